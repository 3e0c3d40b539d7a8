"""Numeric tolerances derived from the dtype and the computation, never tuned to one machine.

Two float computations of one mathematical quantity that differ only in evaluation order (another batch
shape or padding, another SIMD width — `ATEN_CPU_CAPABILITY` —, another BLAS blocking, another CPU) differ
by rounding. Every tolerance in the suite bounds that difference from the unit roundoff `u` of the dtype
(2⁻²⁴ for float32) and the size of the computation:

- **One inner product** of length n: `|fl(a·b) − a·b| ≤ λ·√n·u·Σ|a_i·b_i|`. This is Higham & Mary's
  probabilistic bound (SIAM J. Sci. Comput. 41(5), 2019), which holds with probability at least
  `1 − 2n·exp(−λ²/2)`; `LAMBDA = 8` makes a false alarm less likely than 1e-9 per element for n ≤ 10⁵.
  (`dot_bound`.)
- **A transformer pass**: each of its L blocks computes inner products of length at most
  K = max(d_model, d_ff) (relative error ~√K·u each) and adds its result to the residual stream. The blocks'
  relative errors are added linearly over L — pessimistic, since independent errors grow like √L — so one
  forward pass is accurate to `L·√K·u` relative to the scale of what it computes, a forward plus backward
  to twice that, and two evaluations of the same thing differ by at most twice one evaluation's error.
  (`network_rtol`: 1.4e-4 for SmolLM2-135M in float32, where the measured differences are ≤ 1.2e-5 on
  every `ATEN_CPU_CAPABILITY` level.)
- **A log-probability** `log p_t = z_t − logsumexp(z)` is a difference of logit-sized numbers, so its
  absolute error is about twice the logits' absolute error, `network_rtol × max|z|`, for each answer token
  (`log_prob_tol`). Probabilities are compared in log space: a probability's relative error is its log's
  absolute error.
- **A greedy token** is decided by the gap between the two largest logits. Two evaluations may pick
  different tokens only where that gap is within twice the logits' absolute error (`tie_tol`); token
  sequences are compared with `assert_same_greedy`, which accepts a difference only at such a near-tie
  and fails anywhere else.

Each bound is checked against deliberate bugs in `test_core.py` (`test_checks_catch_deliberate_bugs`): a
wrong answer position, a wrong layer and a missing error term all exceed the tolerance they are tested
with many times over, so no tolerance here is loose enough to let one through.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

LAMBDA = 8.0


def unit_roundoff(dtype: torch.dtype = torch.float32) -> float:
    """u = eps / 2: the largest relative error of rounding one real number to `dtype`."""
    return torch.finfo(dtype).eps / 2


def dot_bound(abs_product_sum: torch.Tensor | float, n: int, dtype: torch.dtype = torch.float32) -> Any:
    """Elementwise bound on the rounding error of inner products of length `n` whose `Σ|a_i·b_i|` is given."""
    return LAMBDA * math.sqrt(n) * unit_roundoff(dtype) * abs_product_sum


def network_rtol(config: Any, dtype: torch.dtype = torch.float32, passes: int = 1) -> float:
    """Relative difference allowed between two evaluations of a quantity computed by `passes` passes
    (1 = forward, 2 = forward + backward) through the model described by `config` (a transformers config)."""
    width = max(int(config.hidden_size), int(getattr(config, "intermediate_size", 0) or 0))
    return 2 * passes * int(config.num_hidden_layers) * math.sqrt(width) * unit_roundoff(dtype)


def log_prob_tol(config: Any, logit_scale: float, n_tokens: int = 1, dtype: torch.dtype = torch.float32) -> float:
    """Absolute tolerance on a sum of `n_tokens` log-probabilities whose logits are at most `logit_scale` in size."""
    return n_tokens * 2 * network_rtol(config, dtype) * logit_scale


def tie_tol(config: Any, logit_scale: float, dtype: torch.dtype = torch.float32) -> float:
    """Top-2 logit gap below which two evaluations may legitimately pick different greedy tokens."""
    return 2 * network_rtol(config, dtype) * logit_scale


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """The first step at which two token sequences differ (a shorter one differs where it ends), or None."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def assert_same_greedy(ours: Sequence[int], ref: Sequence[int], gap_at: Callable[[int], tuple[float, float]],
                       config: Any, what: str = "tokens") -> None:
    """`ours == ref`, except that they may part at a near-tie and differ from there on.

    gap_at(i) → (top-2 logit gap, max |logit|) of the reference's step i, given the common prefix; it is
    called only when the sequences differ, at their first difference.
    """
    i = first_divergence(ours, ref)
    if i is None:
        return
    gap, scale = gap_at(i)
    allowed = tie_tol(config, scale)
    assert gap <= allowed, (f"{what} differ at step {i} ({list(ours)} vs {list(ref)}) where the top-2 logit gap "
                            f"{gap:.3g} exceeds the rounding tie tolerance {allowed:.3g}: not a near-tie, a real "
                            f"difference")


def top2_gap(logits: torch.Tensor) -> tuple[float, float]:
    """(top-1 minus top-2 logit, max |logit|) of a `[vocab]` logit vector."""
    top = torch.topk(logits.float(), 2).values
    return float(top[0] - top[1]), float(logits.abs().max())
