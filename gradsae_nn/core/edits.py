"""Latent edits at one residual-stream layer: what an edit is, a batch of them, and applying them to `x`.

Plain tensor code that runs inside nnsight traces (local or remote) and in the tests' plain-PyTorch
reference; nothing here knows about nnsight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import OptionError
from ..modes import EditImpl, check_mode
from .sae import SAESlice, SparseAutoencoder, is_sliceable, sae_architecture, slice_sae


@dataclass(frozen=True)
class LatentEdit:
    """One example's edit: zero the latents `zero`, then set each latent in `inject` to its value.

    Steering zeroes the example's own TopK and injects another question's TopK (ids with values); an
    ablation only zeroes. An injected latent is zeroed first, so its final value is exactly the given one.
    """

    zero: tuple[int, ...] = ()
    inject: tuple[tuple[int, float], ...] = ()

    @property
    def latents(self) -> tuple[int, ...]:
        return tuple(dict.fromkeys((*self.zero, *(i for i, _ in self.inject))))

    @property
    def is_empty(self) -> bool:
        return not self.zero and not self.inject


@dataclass(frozen=True)
class BatchEdit:
    """The edits of a batch, over the union `U` of their latents.

    latents: `[u]` ids of `U`; zero_mask: `[batch, u]`, 1 where a row removes that latent's own
    contribution; inject: `[batch, u]`, the value a row sets it to (0 elsewhere).
    """

    latents: torch.Tensor
    zero_mask: torch.Tensor
    inject: torch.Tensor

    @classmethod
    def build(cls, edits: Sequence[LatentEdit], device: torch.device | str, dtype: torch.dtype) -> "BatchEdit":
        union = list(dict.fromkeys(i for e in edits for i in e.latents))
        column = {latent: j for j, latent in enumerate(union)}
        zero_mask = torch.zeros(len(edits), len(union), dtype=dtype)
        inject = torch.zeros(len(edits), len(union), dtype=dtype)
        for row, edit in enumerate(edits):
            for latent in edit.latents:
                zero_mask[row, column[latent]] = 1.0
            for latent, value in edit.inject:
                inject[row, column[latent]] = value
        return cls(torch.tensor(union, dtype=torch.long, device=device), zero_mask.to(device), inject.to(device))


def resolve_edit_impl(sae: SparseAutoencoder, edit_impl: str, splice: str, remote: bool = False) -> str:
    """`auto` → `sliced` where exact (ReLU/JumpReLU, lossless), else `full`; refuses an impossible `sliced`.

    remote: only `sliced` is possible (the request carries the edited latents' rows, never the SAE).
    """
    impl = check_mode(edit_impl, EditImpl, "edit_impl")
    if impl == "sliced" and splice == "reconstruct":
        raise OptionError("{edit_impl} sliced edits the residual directly; with {splice} reconstruct use {edit_impl} full")
    if impl == "sliced" and not is_sliceable(sae):
        slice_sae(sae, [])  # raises the one-line explanation
    if impl == "auto":
        impl = "sliced" if is_sliceable(sae) and splice == "lossless" else "full"
    if remote and impl != "sliced":
        why = ("{splice} reconstruct runs the model on the whole SAE's output" if splice == "reconstruct" else
               "{edit_impl} full needs the whole SAE" if is_sliceable(sae) else
               f"this SAE is {sae_architecture(sae)!r} (normalize_activations={sae.cfg.normalize_activations!r}): its "
               f"latents depend on each other (TopK picks the k largest of all), so it cannot be sliced")
        raise OptionError(f"remote edits send only the edited latents' encoder/decoder rows (the sliced edit, ReLU or "
                          f"JumpReLU SAEs with {{splice}} lossless); {why}: run this edit locally")
    return impl


class EditApplier:
    """Applies a `BatchEdit` to residual activations `x` `[batch, seq, d_in]` at one layer.

    sliced: `x' = x − (f_U(x) ⊙ zero_mask) W_dec[U] + inject W_dec[U]`, where `f_U` encodes only `U`'s rows.
    For ReLU/JumpReLU SAEs this equals `decode(edit(encode(x))) + (x − decode(encode(x)))` (tested).
    full: that right-hand side literally (lossless), or `decode(edit(encode(x)))` (reconstruct).

    A sliced applier keeps only the slice (no reference to the SAE), so it can travel in a remote request:
    `[u, d_in]` encoder and decoder rows plus the `[batch, u]` masks. Its tensors follow `x` to its device.
    """

    def __init__(self, sae: SparseAutoencoder, edit: BatchEdit, edit_impl: str, splice: str) -> None:
        self.edit, self.edit_impl, self.splice = edit, edit_impl, splice
        self.slice: SAESlice | None = slice_sae(sae, edit.latents) if edit_impl == "sliced" else None
        self.sae = None if self.slice is not None else sae

    def __call__(self, x: torch.Tensor, positions: slice = slice(None)) -> torch.Tensor:
        """Edited copy of `x`: columns `positions` edited; the others unchanged (lossless) or
        reconstructed (reconstruct: the model always runs on the SAE's output)."""
        if self.splice == "reconstruct":
            out = self.sae.decode(self.sae.encode(x)).to(x.dtype)
        else:
            out = x.clone()
        out[:, positions] = self._edit(x[:, positions])
        return out

    def _edit(self, x: torch.Tensor) -> torch.Tensor:
        edit = self.edit
        if self.slice is not None:
            f = self.slice.encode(x)                                      # [batch, seq, u]
            inject, zero_mask = edit.inject.to(f.device), edit.zero_mask.to(f.device)
            delta = (inject[:, None, :] - f * zero_mask[:, None, :]) @ self.slice.W_dec.to(f.device)
            return x + delta.to(x.dtype)
        h = self.sae.encode(x)                                            # [batch, seq, d_sae]
        edited = h.clone()
        edited[..., edit.latents] = h[..., edit.latents] * (1 - edit.zero_mask[:, None, :]) + edit.inject[:, None, :]
        out = self.sae.decode(edited)
        if self.splice == "lossless":
            out = out + (x - self.sae.decode(h))
        return out.to(x.dtype)
