"""TopK / BottomK latent selection from per-example scores.

`Z_NZ = {c : g_c > 0}`; TopK = the K largest scores in Z_NZ, BottomK = the K smallest. K is a whole
number or a percentage `"P%"` of the latents active at the last prompt token (the paper's "50%").
If K exceeds |Z_NZ| all of Z_NZ is taken and `truncated` is set: zero-score latents are never used as
padding. With `pad=True` (the authors' code, `--pad-topk`) TopK is instead the first K of a descending sort
over *all* latents, so zero-score latents fill it up (their zeroing is then a no-op for those never active).
Ties go to the lower latent id (the authors' `torch.argsort` leaves the order of ties unspecified).

A `Setting` names one cell of an experiment's table: (method, which, K), keyed `"gradsae/top/10"`;
`UNEDITED` (`"none"`) is the run without an edit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import torch

from ..errors import OptionError, UsageError
from ..modes import METHODS, WHICH

UNEDITED = "none"

_PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")


def parse_k(text: str | int) -> int | str:
    """`10` → 10, `"50%"` → `"50%"`; refuses K ≤ 0 and malformed or out-of-range percentages."""
    if isinstance(text, int) or str(text).strip().isdigit():
        k = int(text)
        if k <= 0:
            raise UsageError(f"K must be positive, got {k}; use a whole number ≥ 1 or a percentage like 50%")
        return k
    match = _PERCENT.match(str(text).strip())
    if not match or not 0 < float(match.group(1)) <= 100:
        raise UsageError(f"malformed K {text!r}; use a whole number ≥ 1 or a percentage in (0, 100] like 50%")
    return f"{match.group(1)}%"


def resolve_k(k: int | str, n_active_last: int) -> int:
    """The number of latents K stands for; a percentage is of `n_active_last`, rounded down, at least 1."""
    if isinstance(k, int):
        return k
    return max(1, math.floor(float(k[:-1]) / 100 * n_active_last))


@dataclass(frozen=True)
class Selection:
    """Chosen latents of one example, best first for "top", worst first for "bottom".

    latents, scores: `[k_used]` latent ids and their scores, in that order.
    k: K as asked (`10`, `"50%"`); k_wanted: the number it resolved to; truncated: fewer than k_wanted
    latents had a positive score, so all of them were taken.
    """

    which: str
    k: int | str
    k_wanted: int
    latents: tuple[int, ...]
    scores: tuple[float, ...]

    @property
    def truncated(self) -> bool:
        return len(self.latents) < self.k_wanted


def select(scores: torch.Tensor, k: int | str, which: str, n_active_last: int, pad: bool = False) -> Selection:
    """TopK (`which="top"`) or BottomK (`"bottom"`) of the positive entries of `scores` `[d_sae]`; with `pad`,
    TopK of all entries (zero scores fill it when fewer than K are positive; BottomK is unchanged)."""
    if which not in ("top", "bottom"):
        raise ValueError(f"which must be 'top' or 'bottom', got {which!r}")
    k_wanted = resolve_k(parse_k(k), n_active_last)
    if pad and which == "top":
        candidates = torch.arange(scores.numel(), device=scores.device)
    else:
        candidates = torch.nonzero(scores > 0).flatten()      # ascending latent ids
    if candidates.numel() == 0:
        raise UsageError("no latent has a positive score for this example (empty selection); check the layer, "
                         "the SAE and that the example has an answer")
    values = scores[candidates]
    # a stable sort over ascending ids breaks ties by the lower id in both directions
    order = torch.sort(values, descending=(which == "top"), stable=True).indices[:k_wanted]
    return Selection(which=which, k=parse_k(k), k_wanted=k_wanted, latents=tuple(candidates[order].tolist()),
                     scores=tuple(values[order].tolist()))


def parse_ks(values: Iterable[str | int]) -> list[str]:
    """Normalised K labels (`"10"`, `"50%"`), in the order given, duplicates refused."""
    values = list(values)
    ks = [str(parse_k(v)) for v in values]
    if len(set(ks)) != len(ks):
        raise OptionError(f"duplicate K in {{k}} {' '.join(map(str, values))}; give each K once")
    return ks


class Setting(NamedTuple):
    """One (method, which, K) cell of a table; `key` is its name in records (`"gradsae/top/10"`)."""

    method: str
    which: str
    k: str

    @property
    def key(self) -> str:
        return f"{self.method}/{self.which}/{self.k}"

    @classmethod
    def parse(cls, key: str) -> "Setting":
        method, which, k = key.split("/")
        return cls(method, which, k)


def settings(ks: Sequence[str], methods: Sequence[str] = METHODS) -> list[Setting]:
    """Every setting in table order: methods, then top before bottom, then K."""
    return [Setting(m, w, k) for m in methods for w in WHICH for k in ks]
