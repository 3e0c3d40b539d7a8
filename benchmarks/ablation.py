"""Row 4: GradSAE scoring vs exact ablation of the same example, for speed and for agreement.

Exact ablation: one forward per active latent, that latent zeroed at every token (prompt and answer), and
the drop of the very target GradSAE differentiates (`scoring.edited_targets`, default `answer-logprob`):
`effect_c = T − T(c zeroed)`. GradSAE's first-order estimate of it is `Σ_n ∂T/∂h_{n,c} · h_{n,c}`.

A real SQuAD prompt (~500 tokens) has thousands of active latents, i.e. thousands of forwards: hours on
a CPU. So the suite ablates a *pool* of `--ablation-latents` of them per example and
- times those forwards interleaved with GradSAE scoring calls (A, B, B, ..., A, B, B, ...), and reports
  the exact-ablation time of *all* active latents as (median seconds per forward) × (number active),
  which is what one-forward-per-latent costs; the measured pool time is in the notes;
- correlates GradSAE scores with the exact effects over the pool: the GradSAE top third, the activation
  baseline's top third, and random other active latents (seeded), so neither method picks the whole pool.
  `--ablation-latents all` ablates every active latent (the pool is then the full set).
"""

from __future__ import annotations

import random
import statistics

import torch

from benchmarks.context import Context
from benchmarks.report import Row, met
from benchmarks.timing import Timing, fmt, timed
from gradsae_nn.core.generation import pad_id
from gradsae_nn.core.scoring import edited_targets, layer_grads, score_examples
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.core.targets import build_batch


def average_ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (Pearson on average ranks); nan when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx and vy else float("nan")


def precision_at(k: int, predicted: list[float], exact: list[float]) -> float:
    """|top-k by `predicted` ∩ top-k by `exact`| / k (ties to the lower index)."""
    k = min(k, len(exact))
    top = lambda v: set(sorted(range(len(v)), key=lambda i: (-v[i], i))[:k])  # noqa: E731
    return len(top(predicted) & top(exact)) / k if k else float("nan")


def choose_pool(gradsae: torch.Tensor, activation: torch.Tensor, size: int | None, seed: int = 0) -> list[int]:
    """Latents to ablate: every active one (`size` None or ≥ active), else a third each of the GradSAE top,
    the activation top, and seeded random other active latents."""
    active = [int(i) for i in torch.nonzero(activation > 0).flatten()]
    if size is None or size >= len(active):
        return active
    third = size // 3
    pool = list(dict.fromkeys([int(i) for i in torch.argsort(gradsae, descending=True, stable=True)[:third]]
                              + [int(i) for i in torch.argsort(activation, descending=True, stable=True)[:third]]))
    rest = [i for i in active if i not in set(pool)]
    pool += random.Random(seed).sample(rest, min(size - len(pool), len(rest)))
    return pool


def signed_estimates(ctx: Context, index: int) -> torch.Tensor:
    """`[d_sae]` Σ_n ∂T/∂h_{n,c} · h_{n,c} over GradSAE's scored tokens, *not* clamped per token.

    GradSAE keeps only each token's positive part (and averages, which does not change one example's
    ranking); this unclamped sum is the plain first-order estimate of `effect_c`, so comparing the two
    Spearmans shows how much of the gap to the exact effects is the clamp."""
    batch = build_batch([ctx.inputs[index]], pad_id=pad_id(ctx.model))
    ((h, grad_h, _),) = layer_grads(ctx.model, ctx.layer, [batch], "answer-logprob", sae=ctx.sae)
    scored = batch.scored_positions(include_bos=False).to(h.device)[..., None]
    return ((grad_h.float() * h.float()) * scored).sum(1)[0].cpu()


def ablate_example(ctx: Context, index: int, pool_size: int | None, batch: int) -> dict:
    example = ctx.inputs[index]
    score = lambda: score_examples(ctx.model, ctx.sae, ctx.layer, [example])  # noqa: E731
    (scores,) = score()                                               # warm-up, and the scores to compare
    pool = choose_pool(scores.gradsae, scores.activation, pool_size)
    n_active = int((scores.activation > 0).sum())
    chunks = [pool[i:i + batch] for i in range(0, len(pool), batch)]
    edited_targets(ctx.model, ctx.sae, ctx.layer, [example], [LatentEdit(zero=(pool[0],))])  # warm-up
    n_a = max(ctx.repeats, 1)
    every = max(1, len(chunks) // n_a)
    a_times: list[float] = []
    per_forward: list[float] = []
    effects: list[float] = []
    for i, chunk in enumerate(chunks):
        if i % every == 0 and len(a_times) < n_a:
            a_times.append(timed(score, ctx.sync))
        out: list[torch.Tensor] = []
        seconds = timed(lambda: out.append(edited_targets(ctx.model, ctx.sae, ctx.layer, [example] * len(chunk),
                                                          [LatentEdit(zero=(c,)) for c in chunk])), ctx.sync)
        per_forward.append(seconds / len(chunk))
        effects += (scores.target - out[0].float().cpu()).tolist()
    while len(a_times) < n_a:
        a_times.append(timed(score, ctx.sync))
    g = [float(scores.gradsae[c]) for c in pool]
    act = [float(scores.activation[c]) for c in pool]
    signed = signed_estimates(ctx, index)
    lin = [float(signed[c]) for c in pool]
    a, fwd = Timing(tuple(a_times)), Timing(tuple(per_forward))
    return {"a": a, "forward": fwd, "n_active": n_active, "pool": len(pool), "pool_seconds": sum(
        s * len(c) for s, c in zip(per_forward, chunks)), "all_seconds": fwd.median * n_active,
        "spearman": spearman(g, effects), "p10": precision_at(10, g, effects),
        "spearman_act": spearman(act, effects), "p10_act": precision_at(10, act, effects),
        "spearman_signed": spearman(lin, effects), "p10_signed": precision_at(10, lin, effects),
        "tokens": len(example.prompt_ids) + len(example.answer_ids)}


def per_example(values: list[float], digits: int = 2) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.{digits}f}" + (f" (per example: {', '.join(f'{v:.{digits}f}' for v in values)})"
                                   if len(values) > 1 else "")


def rows_ablation(ctx: Context, n_examples: int, pool_size: int | None, batch: int = 1) -> list[Row]:
    results = [ablate_example(ctx, i, pool_size, batch) for i in range(n_examples)]
    speedups = [r["all_seconds"] / r["a"].median for r in results]
    rhos, p10s = [r["spearman"] for r in results], [r["p10"] for r in results]
    pool_note = ("every active latent" if pool_size is None else
                 f"a pool of up to {pool_size} active latents per example (GradSAE top third, activation top third, "
                 f"seeded random rest)")
    notes = [f"example {i}: {r['tokens']} tokens, {r['n_active']} active latents, pool {r['pool']}; GradSAE "
             f"{r['a'].describe()}; exact ablation {r['forward'].describe()} per forward → "
             f"{fmt(r['all_seconds'])} s for all active (measured on the pool: {fmt(r['pool_seconds'])} s, "
             f"{fmt(r['pool_seconds'] / r['a'].median)}× GradSAE); Spearman {r['spearman']:.3f}, precision@10 "
             f"{r['p10']:.2f}; the unclamped first-order estimate Σ_n ∂T/∂h·h (same tokens): Spearman "
             f"{r['spearman_signed']:.3f}, precision@10 {r['p10_signed']:.2f}; the activation baseline on the same "
             f"pool: Spearman {r['spearman_act']:.3f}, precision@10 {r['p10_act']:.2f}." for i, r in enumerate(results)]
    a_med = statistics.fmean(r["a"].median for r in results)
    b_med = statistics.fmean(r["all_seconds"] for r in results)
    speed = Row("4a", f"GradSAE scoring of 1 example ({n_examples} examples, mean)",
                f"exact ablation: 1 forward per active latent (batch {batch}), "
                f"{statistics.fmean(r['n_active'] for r in results):.0f} active on average",
                f"{fmt(a_med)} s", f"{fmt(b_med)} s (per-forward median × active)",
                f"{per_example(speedups, 0)}× faster", "≥ 20× faster", met(min(speedups) >= 20),
                [f"exact effect = drop of the answer log-prob with the latent zeroed at every token; ablated: "
                 f"{pool_note}.", *notes])
    rho = Row("4b", "Spearman(GradSAE score, exact effect)", f"over the ablated latents ({pool_note})", "—", "—",
              per_example(rhos), "≥ 0.6", met(statistics.fmean(rhos) >= 0.6),
              [f"context: the same first-order estimate without GradSAE's per-token clamp (Σ_n ∂T/∂h·h) gets "
               f"Spearman {per_example([r['spearman_signed'] for r in results])} on the same latents; the "
               f"activation baseline {per_example([r['spearman_act'] for r in results])}."])
    p10 = Row("4c", "precision@10 (GradSAE top 10 vs exact top 10)", "over the ablated latents", "—", "—",
              per_example(p10s), "report", "report")
    return [speed, rho, p10]
