"""`LatentScores`: one example's scores over all latents, under every ranking method computed."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..modes import Method, check_mode
from .tokens import TokenDetail


@dataclass(frozen=True)
class LatentScores:
    """Scores of one example over all latents.

    gradsae: `[d_sae]` mean over scored tokens of relu(∂T/∂h · h).
    activation: `[d_sae]` mean over scored tokens of h (the paper's baseline).
    n_tokens: number of scored tokens N.
    n_active_last: latents with h > 0 at the last scored position (the last prompt token, or with
        `all-at-target-step` the last token before the target): K = "50%" is half of this.
    target: the value of the target T.
    activation_last: `[d_sae]` h at that position (a steering value source).
    attribution: `[d_sae]` Σ over scored tokens of ∂T/∂h · h, unclamped (`core.integrated.attribution_scores`).
    integrated_gradients: `[d_sae]` IG over the scored tokens (`core.integrated`), when asked for; target_zero:
        T with every latent zeroed at the scored tokens, so `integrated_gradients.sum()` should equal
        `target − target_zero` (completeness; the gap is the quadrature's error).
    tokens: per-token contributions and activations of the top latents (`core.tokens`), when asked for.
    exact: `[d_sae]` the measured drop in T with each candidate latent zeroed at the scored tokens
        (`core.exact`), 0 for latents that were not candidates; when asked for.
    """

    gradsae: torch.Tensor
    activation: torch.Tensor
    n_tokens: int
    n_active_last: int
    target: float
    activation_last: torch.Tensor
    attribution: torch.Tensor | None = None
    integrated_gradients: torch.Tensor | None = None
    exact: torch.Tensor | None = None
    target_zero: float | None = None
    tokens: TokenDetail | None = None

    def by_method(self, method: str) -> torch.Tensor:
        """`[d_sae]` ranking scores of `method` (`modes.Method`; "baseline" is the mean activation)."""
        check_mode(method, Method, "method")
        value = {"gradsae": self.gradsae, "baseline": self.activation, "attribution": self.attribution,
                 "integrated-gradients": self.integrated_gradients, "exact": self.exact}[method]
        if value is None:
            raise ValueError(f"method {method!r} was not computed for these scores; score with it in `methods`")
        return value
