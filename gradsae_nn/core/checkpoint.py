"""Activation checkpointing of the layers above the SAE's, for scoring in less memory.

Scoring needs `∂T/∂x` at layer L only, so the backward runs through the layers above L and the head, and the
forward keeps their activations for it. With checkpointing each layer above L keeps only its input; its
internals are recomputed during the backward (one more forward of those layers: 1.23× the scoring time on
SmolLM2 at L15, benchmark row 6b). The layers up to L are no-grad anyway (the model is frozen and nothing below L needs
a gradient), and layer L itself is never recomputed, so the splice and its edits run exactly once.

Mechanism: transformers' own per-layer switch (`GradientCheckpointingLayer`: `gradient_checkpointing` and
`training` set, `_gradient_checkpointing_func` = non-reentrant `torch.utils.checkpoint`), set on the layers
above L for the duration and restored after. Local only: a remote server runs its model as it is.

Pitfall. Symptom: checkpointing "does nothing" (same peak memory). Cause: transformers checkpoints a layer
only while `layer.training` is True; the package keeps models in eval mode. Wrong:
`model.gradient_checkpointing_enable()` alone. Right: also `train()` the checkpointed layers (their dropout
rates are 0 in every supported family, so outputs are unchanged; tested equal).
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Iterator

import torch.utils.checkpoint

from ..errors import OptionError, literal

if TYPE_CHECKING:
    from ..models import LoadedModel


@contextmanager
def checkpointed_above(model: "LoadedModel", layer: int) -> Iterator[int]:
    """Within the block, layers `layer + 1 …` of `model` recompute their activations in the backward; yields
    how many layers that is."""
    if model.remote is not None:
        raise OptionError("{checkpoint} changes the model where it runs and a remote server runs its own; drop "
                          "{checkpoint} with {remote}")
    modules = [model.layer(i)._module for i in range(layer + 1, model.n_layers)]
    if not all(hasattr(m, "gradient_checkpointing") for m in modules):
        raise OptionError(f"{literal(model.name)}'s layers do not support transformers' gradient checkpointing; "
                          "drop {checkpoint}")
    saved = [(m.training, m.__dict__.get("gradient_checkpointing"), m.__dict__.get("_gradient_checkpointing_func"))
             for m in modules]
    for m in modules:
        m.gradient_checkpointing = True
        m._gradient_checkpointing_func = partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
        m.train()
    try:
        yield len(modules)
    finally:
        for m, (training, flag, func) in zip(modules, saved):
            m.train(training)
            for name, value in (("gradient_checkpointing", flag), ("_gradient_checkpointing_func", func)):
                if value is None:
                    m.__dict__.pop(name, None)
                else:
                    setattr(m, name, value)
