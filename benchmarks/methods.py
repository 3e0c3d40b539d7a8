"""Row 9: the cost of the ranking methods beyond GradSAE, each against GradSAE's scoring of the same example,
side by side (`core.methods`; docs/method.md, "Ranking methods").

- 9a integrated gradients with m = 8 Gauss-Legendre nodes: 1 forward to the layer + m forwards and backwards
  (+ one forward at h = 0), against GradSAE's 1 forward and backward;
- 9b exact ablation of the candidates (the union of GradSAE's, the baseline's and attribution's top 50): the
  layers above the SAE's once per candidate (in rows of 32, an unedited row each), no grad.
Attribution needs nothing more: it is read off the same pass as GradSAE (ratio 1 by construction).
"""

from __future__ import annotations

from benchmarks.context import Context
from benchmarks.report import Row
from benchmarks.timing import fmt, interleaved, paired_ratio
from gradsae_nn.core.exact import exact_effects
from gradsae_nn.core.generation import pad_id
from gradsae_nn.core.integrated import integrated_gradients
from gradsae_nn.core.methods import exact_candidate_ids
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.targets import build_batch

IG_STEPS = 8
CANDIDATES = 50


def rows_methods(ctx: Context) -> list[Row]:
    example = ctx.inputs[0]
    batch = build_batch([example], pad_id=pad_id(ctx.model))
    scored = batch.scored_positions(include_bos=False)
    candidates = exact_candidate_ids(ctx.scores[0], CANDIDATES)
    fns = {"gradsae": lambda: score_examples(ctx.model, ctx.sae, ctx.layer, [example]),
           "ig": lambda: integrated_gradients(ctx.model, ctx.sae, ctx.layer, batch, scored, "answer-logprob", IG_STEPS),
           "exact": lambda: exact_effects(ctx.model, ctx.sae, ctx.layer, example, candidates)}
    t = interleaved(fns, ctx.repeats, sync=ctx.sync)
    tokens = len(example.prompt_ids) + len(example.answer_ids)
    rows = []
    for number, name, what, expected in (
            ("9a", "ig", f"integrated gradients, m = {IG_STEPS} (1 forward + {IG_STEPS + 1} forwards and backwards)",
             f"≈ {IG_STEPS + 1}× by pass count"),
            ("9b", "exact", f"exact ablation of {len(candidates)} candidates (the layers above L{ctx.layer} once each)",
             "report")):
        ratio = t[name].median / t["gradsae"].median
        pr = paired_ratio(t[name], t["gradsae"])
        rows.append(Row(number, what, "GradSAE scoring of the same example (1 forward + backward)",
                        t[name].describe(), t["gradsae"].describe(), f"{ratio:.1f}× the cost", expected, "report",
                        [f"example 0 ({tokens} tokens); paired ratio median {fmt(pr.median)}×, IQR "
                         f"[{fmt(pr.q1)}–{fmt(pr.q3)}]; attribution comes from GradSAE's own pass (ratio 1)."]))
    return rows
