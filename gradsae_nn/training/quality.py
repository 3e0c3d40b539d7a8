"""SAE quality on held-out text: explained variance, L0, dead latents, cross-entropy loss recovered.

Position 0 of every window is left out of every metric (and is never replaced when splicing): it is an
attention sink with a huge residual norm, and including it inflates explained variance to a fake ~0.998.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterator

import torch

from ..core.generation import pad_id
from ..core.targets import ScoringInput, build_batch
from .train import token_windows

if TYPE_CHECKING:
    from ..core.sae import SparseAutoencoder
    from ..models import LoadedModel


@dataclass(frozen=True)
class SAEQuality:
    """explained_variance: 1 − Σ‖x − x̂‖² / Σ‖x − mean x‖²; l0: mean active latents per token; dead_fraction:
    latents never active on the evaluation tokens; ce_*: mean next-token cross-entropy with the layer as is
    (clean), replaced by the SAE reconstruction (sae), or zeroed (zero); ce_loss_recovered:
    (ce_zero − ce_sae) / (ce_zero − ce_clean)."""

    n_tokens: int
    explained_variance: float
    l0: float
    dead_fraction: float
    ce_clean: float
    ce_sae: float
    ce_zero: float
    ce_loss_recovered: float

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def evaluate_sae(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, texts: Iterator[str], n_tokens: int = 20_000,
                 context_size: int = 128, batch_size: int = 16) -> SAEQuality:
    """Quality of `sae` at `layer` on about `n_tokens` tokens of `texts` (position 0 excluded)."""
    windows = token_windows(model, texts, context_size)
    module = model.layer(layer)
    sq_err = 0.0
    sum_x = torch.zeros(model.d_model, dtype=torch.float64)
    sum_x2 = 0.0
    l0_sum = 0.0
    ever_active = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    ce = {"clean": 0.0, "sae": 0.0, "zero": 0.0}
    counted = n_ce = 0
    while counted < n_tokens:
        chunk = [w for _, w in zip(range(batch_size), windows)]
        if not chunk:
            break
        batch = build_batch([ScoringInput(tuple(w[:-1]), tuple(w[-1:])) for w in chunk], pad_id(model))
        keep = batch.attention_mask.bool()
        keep[torch.arange(len(chunk)), batch.prompt_start] = False
        inputs = batch.model_inputs(model.device, all_logits=True)  # the CE loss reads every column
        labels = inputs["input_ids"][:, 1:]
        scored = keep[:, 1:] & keep[:, :-1]          # predict a kept token from a kept (non-first) token
        for mode in ("clean", "sae", "zero"):
            with torch.no_grad(), model.lm.trace(inputs):
                x = module.output
                if mode == "clean":
                    x_saved = x.save()
                else:
                    replaced = sae.decode(sae.encode(x)).to(x.dtype) if mode == "sae" else torch.zeros_like(x)
                    mask = keep.to(x.device)[..., None]
                    module.output = torch.where(mask, replaced, x)
                logits = model.lm.lm_head.output.save()
            logp = logits[:, :-1].float().log_softmax(-1).gather(-1, labels[..., None])[..., 0]
            ce[mode] += float(-(logp * scored).sum())
        xs = x_saved[keep].double()
        with torch.no_grad():
            h = sae.encode(xs.to(sae.W_enc.dtype))
            recon = sae.decode(h).double()
        sq_err += float(((xs - recon) ** 2).sum())
        sum_x += xs.sum(0)
        sum_x2 += float((xs ** 2).sum())
        l0_sum += float((h > 0).sum())
        ever_active |= (h > 0).any(0)
        counted += xs.shape[0]
        n_ce += int(scored.sum())
    total_sq = sum_x2 - float((sum_x ** 2).sum()) / counted       # Σ‖x − mean‖²
    clean, with_sae, zero = (ce[k] / n_ce for k in ("clean", "sae", "zero"))
    return SAEQuality(n_tokens=counted, explained_variance=1 - sq_err / total_sq, l0=l0_sum / counted,
                      dead_fraction=float((~ever_active).float().mean()), ce_clean=clean, ce_sae=with_sae,
                      ce_zero=zero, ce_loss_recovered=(zero - with_sae) / (zero - clean))


def dead_fraction(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, texts: Iterator[str], n_tokens: int,
                  context_size: int = 128) -> float:
    """Latents never active on `n_tokens` tokens of `texts` (position 0 excluded; forward cut at `layer`).

    Cheap next to `evaluate_sae` (no logits), so it can look at more tokens: a latent that fires once in
    10k tokens is alive, but counts as dead on a 4k-token sample.
    """
    from .train import collect_activations

    acts = collect_activations(model, [layer], texts, n_tokens, context_size)[layer]
    ever_active = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    with torch.no_grad():
        for rows in acts.split(4096):
            ever_active |= (sae.encode(rows.to(sae.W_enc.dtype)) > 0).any(0)
    return float((~ever_active).float().mean())
