"""Exact ablation: the measured drop in the target when one latent is zeroed at the scored positions
(`--methods exact`), for a set of candidate latents: the ground truth the first-order rankings estimate.

`exact_c = T − T(h_{n,c} = 0 for n ∈ P)`, P the scored positions (the same positions GradSAE, attribution and
integrated gradients sum over, so `attribution` is exactly its first-order Taylor estimate). One row per
candidate: the example runs once through the layers up to the SAE's, its residual is repeated for the rows,
each row's latent is removed with the sliced edit (`EditApplier`: only the candidates' encoder and decoder
rows; the same edit the perturbation makes, restricted to P), and the layers above run per row, no grad. A
remote request carries the sliced rows and the position mask, never the SAE.

Cost: the layers above the SAE's layer once per candidate (in batches of `rows`), against GradSAE's one forward
and backward of the whole model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..remote import run_traces
from .edits import BatchEdit, EditApplier, LatentEdit, resolve_edit_impl
from .generation import pad_id
from .sae import SparseAutoencoder
from .targets import ScoringBatch, ScoringInput, build_batch, model_logits, target_values

if TYPE_CHECKING:
    from ..models import LoadedModel


def ablation_trace(lm: Any, module: Any, batch: ScoringBatch, rows: ScoringBatch, applier: EditApplier,
                   mask: torch.Tensor, target: str) -> torch.Tensor:
    """Kernel: `[rows]` target with row r's edit applied where `mask` `[1, seq]` is set; `batch` is the one
    example, `rows` the same example repeated (its layout for the target)."""
    with torch.no_grad(), lm.trace(batch.model_inputs(lm.device)):
        x = module.output.expand(rows.input_ids.shape[0], -1, -1)
        edited = applier(x.contiguous())
        module.output = torch.where(mask.to(x.device)[..., None], edited, x)
        values = target_values(model_logits(lm), rows, target).save()
    return values


def exact_effects(model: "LoadedModel", sae: SparseAutoencoder, layer: int, example: ScoringInput,
                  candidates: Sequence[int], target: str = "answer-logprob", include_bos: bool = False,
                  rows: int = 32) -> torch.Tensor:
    """`[len(candidates)]` the drop `T − T(c zeroed at P)` for each candidate latent `c`, in order.

    Each chunk of `rows` candidates carries one unedited row, and its candidates' drops are measured from that
    row's T: the same batch shape on both sides, so a latent with no effect gets exactly 0 rather than the
    rounding difference between two batch layouts. Remotely every chunk goes in one request.
    """
    batch = build_batch([example], pad_id=pad_id(model))
    width = batch.input_ids.shape[1]
    mask = torch.zeros(1, width, dtype=torch.bool)
    mask[:, : batch.scored_end] = batch.scored_positions(include_bos)
    impl = resolve_edit_impl(sae, "auto", "lossless", remote=model.remote is not None)
    module = model.layer(layer)
    calls = []
    for start in range(0, len(candidates), rows):
        chunk = list(candidates[start:start + rows])
        edit = BatchEdit.build([LatentEdit(), *(LatentEdit(zero=(c,)) for c in chunk)], model.device, sae.W_dec.dtype)
        calls.append((model.lm, module, batch, build_batch([example] * (len(chunk) + 1), pad_id=pad_id(model)),
                      EditApplier(sae, edit, impl, "lossless"), mask, target))
    values = run_traces(model, ablation_trace, calls, label=f"exact ablation ({len(candidates)} latents)")
    if not values:
        return torch.zeros(0)
    return torch.cat([(v[0] - v[1:]).float().cpu() for v in values])


def candidate_latents(rankings: Sequence[torch.Tensor], n: int) -> list[int]:
    """The union, in first-seen order, of each ranking's top `n` latents with a positive score (ties to the
    lower id): the latents `exact` measures."""
    chosen: dict[int, None] = {}
    for scores in rankings:
        positive = torch.nonzero(scores > 0).flatten()
        order = torch.sort(scores[positive], descending=True, stable=True).indices[:n]
        chosen.update(dict.fromkeys(positive[order].tolist()))
    return list(chosen)
