"""Client-side scores from `x` and `∂T/∂x` (the x-grad path) for a wide SAE in bounded memory.

`latent_grads_from_x` materialises `h` and `∂T/∂h` as `[batch, tokens, d_sae]`: for Gemma Scope's 131k latents
and a batch of 8 prompts of 500 tokens that is 2 × 2.1 GB in fp32. Here the latents are taken `chunk` at a time
(`SAESlice`: ReLU/JumpReLU latents are computed independently), each chunk reduced to its per-row scores at
once, so the peak is `[batch, tokens, chunk]`. The scores equal the unchunked ones (tested); the per-token
detail of each row's top latents (`core.tokens`) is computed afterwards from a slice of just those latents.
"""

from __future__ import annotations

import torch

from .sae import SparseAutoencoder, slice_sae
from .scores import LatentScores
from .tokens import rankings_of, token_details, top_union

LATENT_CHUNK = 16_384


def chunked_scores(sae: SparseAutoencoder, x: torch.Tensor, grad_x: torch.Tensor, scored: torch.Tensor,
                   target: torch.Tensor, chunk: int = LATENT_CHUNK) -> list[LatentScores]:
    """`scoring.reduce_scores` of `encode(x)` and `∂T/∂x · W_decᵀ`, `chunk` latents at a time; x, grad_x
    `[batch, scored_end, d_in]`, scored `[batch, scored_end]` bool, target `[batch]`."""
    d_sae = sae.cfg.d_sae
    weights = scored.to(torch.float32)[..., None]
    n = scored.sum(-1)
    last_col = scored.shape[1] - 1 - scored.flip(-1).int().argmax(-1)
    rows = torch.arange(x.shape[0], device=x.device)
    parts: dict[str, list[torch.Tensor]] = {"gradsae": [], "activation": [], "attribution": [], "last": []}
    with torch.no_grad():
        for start in range(0, d_sae, chunk):
            piece = slice_sae(sae, range(start, min(d_sae, start + chunk)))
            h = piece.encode(x).float()                                                  # [batch, seq, m]
            product = (grad_x.to(piece.W_dec.dtype) @ piece.W_dec.to(x.device).T).float() * h
            parts["gradsae"].append((torch.relu(product) * weights).sum(1) / n[:, None])
            parts["activation"].append((h * weights).sum(1) / n[:, None])
            parts["attribution"].append((product * weights).sum(1))
            parts["last"].append(h[rows, last_col.to(h.device)])
    full = {name: torch.cat(values, dim=-1).cpu() for name, values in parts.items()}
    return [LatentScores(full["gradsae"][i], full["activation"][i], int(n[i]), int((full["last"][i] > 0).sum()),
                         float(target[i]), full["last"][i], full["attribution"][i]) for i in range(x.shape[0])]


def chunked_token_details(sae: SparseAutoencoder, x: torch.Tensor, grad_x: torch.Tensor, scored: torch.Tensor,
                          prompt_start: torch.Tensor, scores: list[LatentScores], n: int) -> list:
    """`core.tokens.token_details` from a slice of only the latents some row shows."""
    rankings = rankings_of(scores)
    shown = sorted({c for row in range(len(scores))
                    for c in top_union(rankings["gradsae"][row], rankings["baseline"][row], n)})
    piece = slice_sae(sae, shown)
    with torch.no_grad():
        h = piece.encode(x).float()
        grad_h = (grad_x.to(piece.W_dec.dtype) @ piece.W_dec.to(x.device).T).float()
    return token_details(h, grad_h, scored, prompt_start, rankings, n, columns=shown)
