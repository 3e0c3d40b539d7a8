"""gradsae_nn: GradSAE (Shu, Wu et al., EMNLP 2025) on nnsight.

Scores the latents of a sparse autoencoder spliced into one layer of an LLM by their influence on the
model's answer, and edits them during generation.

    import gradsae_nn as gs
    lens = gs.load("smollm2-135m-it")                 # the model with its default SAE, at the SAE's layer
    att = lens.score("The Eiffel Tower is in the city of")
    att.show(10)
    lens.generate("The Eiffel Tower is in the city of", zero=att.top_latents(10))

Names are imported on first use, so `python -m gradsae_nn.ndif_local` and `--help` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load": "api", "Lens": "api", "Attribution": "api", "LatentRow": "api", "apply_edit": "api",
    "apply_splice": "core.splice", "LatentEdit": "core.edits", "score_examples": "core.scoring",
    "edited_generate": "core.editing", "greedy_generate": "core.generation", "select": "core.selection",
    "Setting": "core.selection", "load_model": "models", "load_sae": "core.sae",
    "PerturbConfig": "config", "SteerConfig": "config", "StatsConfig": "config", "SweepConfig": "config",
    "AnswerRunConfig": "config", "perturb": "runs.perturbation", "steer": "runs.steering", "stats": "runs.overlap",
    "layer_sweep": "runs.sweep", "answer": "runs.answers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'gradsae_nn' has no attribute {name!r}")
