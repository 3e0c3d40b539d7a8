"""gradsae_nn: GradSAE (Shu, Wu et al., EMNLP 2025) on nnsight.

Scores the latents of a sparse autoencoder spliced into one layer of an LLM by their influence on the
model's answer, and edits them during generation.
"""

__version__ = "0.1.0"
