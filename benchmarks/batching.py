"""Row 5: examples per second at batch n (8) vs batch 1, for GradSAE scoring and for edited generate.

Batch n is one call on n examples (left-padded, one edit per row); batch 1 is n calls on one example each,
over the same n examples; the ratio of their times is the ratio of examples/s.
"""

from __future__ import annotations

from typing import Callable

from benchmarks.context import Context
from benchmarks.report import Row, met
from benchmarks.timing import fmt, interleaved, paired_ratio
from gradsae_nn.core.editing import edited_generate
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.targets import ScoringInput

GEN_TOKENS = 16  # the experiments' --max-new-tokens
WARMUP_TOKENS = 16


def rows_batching(ctx: Context, n: int) -> list[Row]:
    inputs, edits = ctx.inputs[:n], ctx.edits[:n]
    prompts = [ex.prompt_ids for ex in inputs]
    tokens = min(GEN_TOKENS, ctx.gen_tokens)
    # Warm-ups make the same calls on the prompts' last WARMUP_TOKENS tokens: a full-size untimed round of both
    # sides would add ~50 s to the suite (issue 7: ≤ 15 min with default options). The last tokens, because the
    # first ones are the same instruction in every prompt, and one prompt repeated takes another generate path.
    short = [ScoringInput(ex.prompt_ids[-WARMUP_TOKENS:], ex.answer_ids) for ex in inputs]

    def scoring(examples: list[ScoringInput], batched: bool) -> Callable[[], None]:
        def run() -> None:
            for chunk in [examples] if batched else [[ex] for ex in examples]:
                score_examples(ctx.model, ctx.sae, ctx.layer, chunk)
        return run

    def generation(examples: list[ScoringInput], batched: bool) -> Callable[[], None]:
        pairs = [(ex.prompt_ids, edit) for ex, edit in zip(examples, edits)]

        def run() -> None:
            for chunk in [pairs] if batched else [[pair] for pair in pairs]:
                edited_generate(ctx.model, ctx.sae, ctx.layer, [p for p, _ in chunk], [e for _, e in chunk], tokens,
                                stop="length")
        return run

    rows = []
    for number, what, make in (("5a", "GradSAE scoring", scoring),
                               ("5b", f"edited generate ({tokens} new tokens, GradSAE top 20 zeroed per row)",
                                generation)):
        sides = {"batched": True, "single": False}
        t = interleaved({name: make(inputs, b) for name, b in sides.items()}, ctx.repeats, sync=ctx.sync,
                        warmups={name: make(short, b) for name, b in sides.items()})
        speedup = t["single"].median / t["batched"].median
        pr = paired_ratio(t["single"], t["batched"])
        rate = lambda s: f"{n / s.median:.3g} ex/s; {s.describe()} per {n} examples"  # noqa: E731
        rows.append(Row(number, f"{what}, batch {n}: examples/s", "batch 1 (the same examples, one call each)",
                        rate(t["batched"]), rate(t["single"]), f"{speedup:.2f}×", "≥ 2.5×", met(speedup >= 2.5),
                        [f"paired ratio median {fmt(pr.median)}×, IQR [{fmt(pr.q1)}–{fmt(pr.q3)}]; prompts of "
                         f"{min(len(p) for p in prompts)}–{max(len(p) for p in prompts)} tokens."]))
    return rows
