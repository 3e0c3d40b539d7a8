"""Per-family facts: where the residual-stream layers live and whether prompts need a BOS token.

Pitfall (transformers 5.x): a decoder layer's output is a plain `[batch, seq, d_model]` tensor, not a
tuple. `layer.output[0]` silently picks the first *batch row*. Always use `layer.output` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class ModelFamily:
    """How to find the residual stream of one architecture family.

    layers_path: dotted attribute path from the top module to the `ModuleList` of decoder layers; the
        output of layer `i` is the residual stream after block `i`, shape `[batch, seq, d_model]`.
    needs_bos: whether a plain-text (few-shot) prompt must start with the BOS token. Gemma degenerates
        without it, and its GGUF tokenizer does not add it by itself.
    """

    name: str
    model_types: tuple[str, ...]
    layers_path: str = "model.layers"
    needs_bos: bool = False


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily("llama", ("llama", "mistral", "qwen2", "qwen3")),
    ModelFamily("gemma", ("gemma", "gemma2", "gemma3_text"), needs_bos=True),
)


def family_for(model_type: str) -> ModelFamily:
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    known = ", ".join(t for f in FAMILIES for t in f.model_types)
    raise UsageError(f"unsupported architecture {model_type!r}: gradsae_nn knows where the residual stream is "
                     f"for {known}; add a ModelFamily in gradsae_nn/models/families.py")
