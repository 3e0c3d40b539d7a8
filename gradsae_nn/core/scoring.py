"""GradSAE and activation scores of SAE latents, from one nnsight trace per batch.

GradSAE: `g_c = mean_n relu(∂T/∂h_{n,c} · h_{n,c})`; baseline: `g_c = mean_n h_{n,c}`, over the scored
prompt positions `n` (the paper's N input tokens), for target `T` (see `targets`).

Two ways to get `∂T/∂h`, equal for the lossless splice (tested):
- `trace`: splice the SAE into the layer inside the trace, read `∂T/∂h` there.
- `x-grad`: save only `x` and `∂T/∂x` at the layer; then `h = encode(x)` and `∂T/∂h = ∂T/∂x · W_decᵀ`
  client-side. No SAE weights enter the trace — the path a remote server uses.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..errors import OptionError
from ..modes import Scoring, SpliceMode, Target, check_mode
from ..remote import run_traces
from .checkpoint import checkpointed_above
from .edits import BatchEdit, EditApplier, LatentEdit, resolve_edit_impl
from .generation import pad_id
from .integrated import attribution_scores
from .methods import check_methods, extend_scores
from .sae import SparseAutoencoder, is_sliceable
from .splice import apply_splice
from .targets import ScoringBatch, ScoringInput, build_batch, model_logits, target_values
from .scores import LatentScores
from .tokens import rankings_of, token_details
from .chunked import LATENT_CHUNK, chunked_scores, chunked_token_details

if TYPE_CHECKING:
    from ..models import LoadedModel


def reduce_scores(h: torch.Tensor, grad_h: torch.Tensor, scored: torch.Tensor, target: torch.Tensor
                  ) -> list[LatentScores]:
    """Per-row scores from `h`, `grad_h` `[batch, scored_end, d_sae]` and `scored` `[batch, scored_end]` bool;
    a row's last scored column is its "last position" (`n_active_last`, `activation_last`)."""
    weights = scored.to(h.dtype)[..., None]
    n = scored.sum(-1)
    gradsae = (torch.relu(grad_h * h) * weights).sum(1) / n[:, None]
    activation = (h * weights).sum(1) / n[:, None]
    last_col = scored.shape[1] - 1 - scored.flip(-1).int().argmax(-1)           # [batch]
    h_last = h[torch.arange(h.shape[0], device=h.device), last_col.to(h.device)]  # [batch, d_sae]
    active_last = (h_last > 0).sum(-1)
    last = h_last.detach().cpu()
    attribution = attribution_scores(h, grad_h, scored).detach().cpu()
    return [LatentScores(gradsae[i].detach().cpu(), activation[i].detach().cpu(), int(n[i]), int(active_last[i]),
                         float(target[i]), last[i], attribution[i]) for i in range(h.shape[0])]


def grad_trace(lm: Any, module: Any, batch: ScoringBatch, target: str, sae: SparseAutoencoder | None = None,
               splice: str = "lossless") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The scoring kernel: one forward + backward; activations `a`, `∂T/∂a` (both `[batch, scored_end, ·]`), `T` `[batch]`.

    lm: the nnsight model; module: the envoy of the layer. With `sae`, the SAE is spliced into the layer
    and `a = h` `[.., d_sae]` (local only: the SAE object cannot travel). Without, `a = x` `[.., d_model]`,
    the layer output itself; `requires_grad_(True)` is needed there because the model is frozen (and a
    remote server freezes it regardless). Runs locally or, inside a session, on an NDIF server.
    """
    with lm.trace(batch.model_inputs(lm.device)):
        if sae is None:
            acts = module.output
            acts.requires_grad_(True)
        else:
            module.output, acts = apply_splice(sae, module.output, splice)
        values = target_values(model_logits(lm), batch, target)
        (grad,) = torch.autograd.grad(values.sum(), acts)
        acts_prompt = acts[:, : batch.scored_end].detach().save()
        grad_prompt = grad[:, : batch.scored_end].save()
        values = values.detach().save()
    return acts_prompt, grad_prompt, values


def layer_grads(model: "LoadedModel", layer: int, batches: Sequence[ScoringBatch], target: str,
                sae: SparseAutoencoder | None = None, splice: str = "lossless", checkpoint: bool = False
                ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """`grad_trace` for each batch (remotely: all in one request); `checkpoint`: the layers above `layer`
    recompute their activations in the backward (`core.checkpoint`; local only)."""
    module = model.layer(layer)
    with checkpointed_above(model, layer) if checkpoint else nullcontext():
        return run_traces(model, grad_trace, [(model.lm, module, batch, target, sae, splice) for batch in batches],
                          label="scoring")


def latent_grads_from_x(sae: SparseAutoencoder, x: torch.Tensor, grad_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`h = encode(x)` and `∂T/∂h = ∂T/∂x · W_decᵀ` (exact for the lossless splice: ∂x'/∂h = W_dec)."""
    with torch.no_grad():
        h = sae.encode(x)
        grad_h = grad_x.to(sae.W_dec.dtype) @ sae.W_dec.T
    return h, grad_h


def score_examples(model: "LoadedModel", sae: SparseAutoencoder, layer: int, examples: Sequence[ScoringInput],
                   target: str = "answer-logprob", splice: str = "lossless", scoring: str = "trace",
                   include_bos: bool = False, scored_positions: str = "prompt", methods: Sequence[str] = (),
                   ig_steps: int = 8, exact_candidates: int = 50, token_latents: int = 0,
                   latent_chunk: int = LATENT_CHUNK, checkpoint: bool = False) -> list[LatentScores]:
    """Scores for each example, computed in one batched forward + backward (plus what `methods` needs); the
    options as `score_batches`."""
    return score_batches(model, sae, layer, [examples], target, splice, scoring, include_bos, scored_positions,
                         methods, ig_steps, exact_candidates, token_latents, latent_chunk, checkpoint)[0]


def score_batches(model: "LoadedModel", sae: SparseAutoencoder, layer: int, batches: Sequence[Sequence[ScoringInput]],
                  target: str = "answer-logprob", splice: str = "lossless", scoring: str = "trace",
                  include_bos: bool = False, scored_positions: str = "prompt", methods: Sequence[str] = (),
                  ig_steps: int = 8, exact_candidates: int = 50, token_latents: int = 0,
                  latent_chunk: int = LATENT_CHUNK, checkpoint: bool = False) -> list[list[LatentScores]]:
    """`score_examples` for each batch of examples; one forward + backward per batch, remotely in one request.

    include_bos: also score the first prompt token (an attention sink; BOS or the first chat token).
    scored_positions: `prompt`, or `all-at-target-step` (`targets.ScoringBatch.scored_positions`).
    methods: `integrated-gradients` / `exact` here add those scores (`core.methods`; more passes per batch);
    GradSAE, the baseline and attribution always come from the one pass.
    token_latents: keep the per-token detail (`core.tokens`) of each example's top `token_latents` latents by
    GradSAE and by the baseline (0: none).
    latent_chunk: with x-grad, an SAE wider than this is scored this many latents at a time (`core.chunked`).
    checkpoint: recompute the activations of the layers above `layer` in the backward (`core.checkpoint`).
    Remotely only `x-grad` is possible: the SAE stays here and scores come from the saved `x` and `∂T/∂x`.
    """
    check_mode(target, Target, "target")
    check_mode(splice, SpliceMode, "splice")
    check_mode(scoring, Scoring, "scoring")
    check_methods(methods, splice)
    if scoring == "x-grad" and splice != "lossless":
        raise OptionError("{scoring} x-grad is exact only for {splice} lossless; use {scoring} trace with "
                          "{splice} reconstruct")
    if scoring == "trace" and model.remote is not None:
        raise OptionError("remote scoring sends no SAE: use {scoring} x-grad (x and dT/dx come back, scores are "
                          "computed here; the default with {remote})")
    built = [build_batch(examples, pad_id=pad_id(model), positions=scored_positions) for examples in batches]
    grads = layer_grads(model, layer, built, target, sae=sae if scoring == "trace" else None, splice=splice,
                        checkpoint=checkpoint)
    out = []
    chunked = scoring == "x-grad" and is_sliceable(sae) and sae.cfg.d_sae > latent_chunk
    for examples, batch, (acts, grad, values) in zip(batches, built, grads):
        scored = batch.scored_positions(include_bos).to(acts.device)
        if chunked:  # bounded memory for a wide SAE (core/chunked.py)
            scores = chunked_scores(sae, acts, grad, scored, values, latent_chunk)
            details = (chunked_token_details(sae, acts, grad, scored, batch.prompt_start, scores, token_latents)
                       if token_latents else None)
        else:
            h, grad_h = (acts, grad) if scoring == "trace" else latent_grads_from_x(sae, acts, grad)
            scores = reduce_scores(h.float(), grad_h.float(), scored, values)
            details = (token_details(h.float(), grad_h.float(), scored, batch.prompt_start, rankings_of(scores),
                                     token_latents) if token_latents else None)
        if details is not None:
            scores = [dataclasses.replace(s, tokens=d) for s, d in zip(scores, details)]
        out.append(extend_scores(model, sae, layer, batch, examples, scores, methods, target, include_bos, ig_steps,
                                 exact_candidates))
    return out


def edited_targets(model: "LoadedModel", sae: SparseAutoencoder, layer: int, examples: Sequence[ScoringInput],
                   edits: Sequence[LatentEdit], target: str = "answer-logprob", splice: str = "lossless",
                   edit_impl: str = "auto") -> torch.Tensor:
    """`[batch]` target of each example with its edit applied at every position (teacher-forced, no grad).

    The exact counterpart of a GradSAE score: zeroing latent c changes T by about −Σ_n ∂T/∂h_{n,c}·h_{n,c}.
    """
    check_mode(target, Target, "target")
    batch = build_batch(examples, pad_id=pad_id(model))
    applier = EditApplier(sae, BatchEdit.build(edits, model.device, sae.W_dec.dtype),
                          resolve_edit_impl(sae, edit_impl, splice, remote=model.remote is not None), splice)
    (values,) = run_traces(model, edited_target_trace, [(model.lm, model.layer(layer), batch, applier, target)],
                           label="edited targets")
    return values


def edited_target_trace(lm: Any, module: Any, batch: ScoringBatch, applier: EditApplier, target: str) -> torch.Tensor:
    """Kernel: the target `[batch]` with `applier`'s edit at every position of the layer (no grad)."""
    with torch.no_grad(), lm.trace(batch.model_inputs(lm.device)):
        module.output = applier(module.output)
        values = target_values(model_logits(lm), batch, target).save()
    return values
