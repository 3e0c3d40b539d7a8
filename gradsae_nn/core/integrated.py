"""Integrated gradients of the target over SAE latents, along the straight path from h = 0 to h at the scored
positions (`--methods integrated-gradients`, `--ig-steps m`).

`IG_c = Σ_{n∈P} h_{n,c} · ∫_0^1 ∂T/∂h_{n,c}(α h) dα`, where every latent at every scored position `P` is scaled
by α together. With the lossless splice, scaling h by α moves the residual to `x_α = x − (1 − α) · (h ⊙ 1_P) W_dec`
(the error term and `b_dec` stay), and `∂T/∂h(α) = ∂T/∂x_α · W_decᵀ`. So each step is one forward + backward of
the *model* with `x_α` written into the layer, and no SAE travels: the path a remote server runs too.

The integral is a Gauss–Legendre quadrature with `m` nodes on (0, 1): exact for polynomials of degree
2m − 1 in α, so completeness — `Σ_c IG_c = T(h) − T(h = 0 at P)` — holds to the quadrature's error, which
`tests/test_methods.py` measures; a Riemann sum with the same m passes would be far coarser. Because the
weighted sum over nodes is linear, `Σ_i w_i ∂T/∂x_{α_i}` is accumulated in d_model space and multiplied by
`W_decᵀ` once.

Cost: one forward (x) + m forwards and backwards, against GradSAE's one forward and backward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..remote import run_traces
from .sae import SparseAutoencoder
from .targets import ScoringBatch, model_logits, target_values

if TYPE_CHECKING:
    from ..models import LoadedModel


def gauss_legendre(m: int) -> tuple[list[float], list[float]]:
    """(nodes, weights) of the m-point Gauss–Legendre rule on [0, 1]; the weights sum to 1."""
    nodes, weights = np.polynomial.legendre.leggauss(m)
    return [float((t + 1) / 2) for t in nodes], [float(w / 2) for w in weights]


def residual_trace(lm: Any, module: Any, batch: ScoringBatch) -> torch.Tensor:
    """Kernel: the layer's output `[batch, scored_end, d_model]` (no grad; the forward stops there)."""
    with torch.no_grad(), lm.trace(batch.model_inputs(lm.device)) as tracer:
        x = module.output[:, : batch.scored_end].save()
        tracer.stop()
    return x


def path_trace(lm: Any, module: Any, batch: ScoringBatch, delta: torch.Tensor, alpha: float, target: str
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel: with `x_α = x − (1 − α) · delta` at the layer (`delta` `[batch, scored_end, d_model]`), the target
    `[batch]` and `∂T/∂x_α` `[batch, scored_end, d_model]`."""
    with lm.trace(batch.model_inputs(lm.device)):
        x = module.output
        shift = torch.zeros_like(x)
        shift[:, : batch.scored_end] = delta.to(x.device, x.dtype)
        moved = (x - (1.0 - alpha) * shift).detach()
        moved.requires_grad_(True)
        module.output = moved
        values = target_values(model_logits(lm), batch, target)
        (grad,) = torch.autograd.grad(values.sum(), moved)
        grad = grad[:, : batch.scored_end].save()
        values = values.detach().save()
    return grad, values


def integrated_gradients(model: "LoadedModel", sae: SparseAutoencoder, layer: int, batch: ScoringBatch,
                         scored: torch.Tensor, target: str, steps: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(`[batch, d_sae]` IG of every latent over the scored positions, `[batch]` T at h = 0 there).

    scored: `[batch, scored_end]` bool, the positions P (`ScoringBatch.scored_positions`). Remotely all m + 2
    traces go in one request each way (x first, then the path).
    """
    module = model.layer(layer)
    (x,) = run_traces(model, residual_trace, [(model.lm, module, batch)], label="IG: residual")
    mask = scored.to(x.device)[..., None].to(sae.W_dec.dtype)
    with torch.no_grad():
        h = sae.encode(x.to(sae.W_dec.dtype)) * mask                                # [batch, scored_end, d_sae]
        delta = h @ sae.W_dec                                                      # [batch, scored_end, d_model]
    nodes, weights = gauss_legendre(steps)
    calls = [(model.lm, module, batch, delta, alpha, target) for alpha in [*nodes, 0.0]]
    results = run_traces(model, path_trace, calls, label=f"IG: {steps} steps")
    with torch.no_grad():
        grad_x = sum(w * g.to(sae.W_dec.dtype) for w, (g, _) in zip(weights, results[:steps]))
        ig = (h * (grad_x @ sae.W_dec.T)).sum(1)                                   # [batch, d_sae]
    return ig.float().cpu(), results[-1][1].float().cpu()


def attribution_scores(h: torch.Tensor, grad_h: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """`[batch, d_sae]` Σ_{n∈P} ∂T/∂h_{n,c} · h_{n,c}: the signed first-order estimate of the drop in T when c is
    zeroed at the scored positions (GradSAE without its per-token clamp, summed rather than averaged)."""
    return (grad_h * h * scored.to(h.dtype)[..., None]).sum(1)


__all__: Sequence[str] = ["attribution_scores", "gauss_legendre", "integrated_gradients"]
