"""The SAE splice at one residual-stream layer, as a plain tensor function.

It runs inside nnsight traces (local or remote) and inside the plain-PyTorch reference used by the tests;
nothing here knows about nnsight.

Splice modes (`modes.SpliceMode`):
- `lossless` (default): `x' = x + (decode(h) − decode(h).detach())`. Forward values are exactly `x`, so
  the model's logits are unchanged, while ∂/∂h flows through `decode`. (`x̂ + (x − x̂).detach()` is off by
  ~3e-7 in fp32; `x̂ + (x − x̂)` gives zero gradient.)
- `reconstruct`: `x' = decode(h)`: the model runs on the SAE reconstruction (the authors' code).
"""

from __future__ import annotations

import torch

from .sae import SparseAutoencoder


def apply_splice(sae: SparseAutoencoder, x: torch.Tensor, splice: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode `x` `[..., d_in]` and return (`x'` to write back, `h` `[..., d_sae]`, a leaf that requires grad)."""
    h = sae.encode(x).detach().requires_grad_(True)
    recon = sae.decode(h).to(x.dtype)
    if splice == "lossless":
        return x + (recon - recon.detach()), h
    return recon, h
