"""Row 5: examples per second at batch n (8) vs batch 1, for GradSAE scoring and for edited generate.

Batch n is one call on n examples (left-padded, one edit per row); batch 1 is n calls on one example each,
over the same n examples; the ratio of their times is the ratio of examples/s.
"""

from __future__ import annotations

from benchmarks.context import Context
from benchmarks.report import Row, met
from benchmarks.timing import fmt, interleaved, paired_ratio
from gradsae_nn.editing import edited_generate
from gradsae_nn.scoring import score_examples

GEN_TOKENS = 16  # the experiments' --max-new-tokens


def rows_batching(ctx: Context, n: int) -> list[Row]:
    inputs, edits = ctx.inputs[:n], ctx.edits[:n]
    prompts = [ex.prompt_ids for ex in inputs]
    tokens = min(GEN_TOKENS, ctx.gen_tokens)

    def score_batched() -> None:
        score_examples(ctx.model, ctx.sae, ctx.layer, inputs)

    def score_single() -> None:
        for ex in inputs:
            score_examples(ctx.model, ctx.sae, ctx.layer, [ex])

    def gen_batched() -> None:
        edited_generate(ctx.model, ctx.sae, ctx.layer, prompts, edits, tokens, stop_at_newline=False)

    def gen_single() -> None:
        for prompt, edit in zip(prompts, edits):
            edited_generate(ctx.model, ctx.sae, ctx.layer, [prompt], [edit], tokens, stop_at_newline=False)

    rows = []
    for number, what, fns in (("5a", "GradSAE scoring", {"batched": score_batched, "single": score_single}),
                              ("5b", f"edited generate ({tokens} new tokens, GradSAE top 20 zeroed per row)",
                               {"batched": gen_batched, "single": gen_single})):
        t = interleaved(fns, ctx.repeats, sync=ctx.sync)
        speedup = t["single"].median / t["batched"].median
        pr = paired_ratio(t["single"], t["batched"])
        rate = lambda s: f"{n / s.median:.3g} ex/s; {s.describe()} per {n} examples"  # noqa: E731
        rows.append(Row(number, f"{what}, batch {n}: examples/s", "batch 1 (the same examples, one call each)",
                        rate(t["batched"]), rate(t["single"]), f"{speedup:.2f}×", "≥ 2.5×", met(speedup >= 2.5),
                        [f"paired ratio median {fmt(pr.median)}×, IQR [{fmt(pr.q1)}–{fmt(pr.q3)}]; prompts of "
                         f"{min(len(p) for p in prompts)}–{max(len(p) for p in prompts)} tokens."]))
    return rows
