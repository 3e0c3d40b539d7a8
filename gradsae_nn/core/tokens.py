"""Per-token detail of an example's top latents, for looking at them (`gradsae_nn.explore`): at every scored
position, each chosen latent's GradSAE contribution `relu(∂T/∂h_{n,c} · h_{n,c})` and its activation `h_{n,c}`.

Only a few latents per example (the top `n` by GradSAE and by the baseline, their union), float16: about 20
latents × 450 tokens × 2 arrays × 2 bytes = 36 kB per example, against the `[tokens, d_sae]` tensors they
come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

TOKEN_LATENTS = 10  # per method: an example's top 10 by GradSAE and by the baseline get per-token detail


@dataclass(frozen=True)
class TokenDetail:
    """latents: `[u]` ids (GradSAE's top first, then the baseline's others); offset: the prompt index of the first
    scored position (1 when position 0 is left out); contribution, activation: `[n_scored, u]` float16;
    ranks: each latent's rank (1 = best) among all latents under "gradsae", "baseline" and "attribution"."""

    latents: tuple[int, ...]
    offset: int
    contribution: torch.Tensor
    activation: torch.Tensor
    ranks: dict[str, list[int]]


def top_union(gradsae: torch.Tensor, activation: torch.Tensor, n: int) -> list[int]:
    """GradSAE's top `n` latents with a positive score, then the baseline's top `n` not already there."""
    chosen: dict[int, None] = {}
    for scores in (gradsae, activation):
        order = torch.sort(scores, descending=True, stable=True).indices[:n]
        chosen.update(dict.fromkeys(c for c in order.tolist() if scores[c] > 0))
    return list(chosen)


def rankings_of(scores: Sequence) -> dict[str, torch.Tensor]:
    """`{"gradsae", "baseline", "attribution": [batch, d_sae]}` from a batch's `LatentScores`."""
    return {"gradsae": torch.stack([s.gradsae for s in scores]),
            "baseline": torch.stack([s.activation for s in scores]),
            "attribution": torch.stack([s.attribution for s in scores])}


def ranks_of(scores: torch.Tensor, latents: list[int]) -> list[int]:
    """1 + the number of latents scoring strictly higher, for each of `latents`."""
    return [1 + int((scores > scores[c]).sum()) for c in latents]


def token_details(h: torch.Tensor, grad_h: torch.Tensor, scored: torch.Tensor, prompt_start: torch.Tensor,
                  rankings: dict[str, torch.Tensor], n: int, columns: list[int] | None = None) -> list[TokenDetail]:
    """One `TokenDetail` per row of `h`, `grad_h` `[batch, scored_end, d_sae]` and `scored` `[batch, scored_end]`;
    `rankings` `{"gradsae", "baseline", "attribution": [batch, d_sae]}`: the first two choose the latents.
    columns: the latent ids of `h`'s last dimension when it holds only some latents (a slice)."""
    position = {c: j for j, c in enumerate(columns)} if columns is not None else None
    out = []
    for row in range(h.shape[0]):
        latents = top_union(rankings["gradsae"][row], rankings["baseline"][row], n)
        columns = torch.nonzero(scored[row]).flatten().to(h.device)
        index = torch.tensor([position[c] for c in latents] if position is not None else latents, dtype=torch.long,
                             device=h.device)
        acts = h[row, columns][:, index]
        contribution = torch.relu(grad_h[row, columns][:, index] * acts)
        offset = int(columns[0]) - int(prompt_start[row]) if columns.numel() else 0
        ranks = {method: ranks_of(scores[row], latents) for method, scores in rankings.items()}
        out.append(TokenDetail(tuple(latents), offset, contribution.half().cpu(), acts.half().cpu(), ranks))
    return out
