"""The method: SAE loading, the splice, targets, scoring, selection, edits and edited generation.

Plain functions over an nnsight model (`models.LoadedModel`) and an SAELens SAE; every nnsight trace is a
kernel that `remote.run_traces` runs locally or on an NDIF server.
"""
