"""Row 10: bf16 against fp32 on the embedded model — not a speed claim but the numbers a GPU user needs before
choosing a dtype: how much of GradSAE's selection and of an edited generation survives half precision.

For each example: the model and SAE in fp32 (the suite's context) and again in bf16; GradSAE scores in both;
- top-10 agreement: |top-10 in bf16 ∩ top-10 in fp32| / 10;
- identical TopK: the share of examples whose K = 10 and K = 50% TopK sets are equal;
- generation: the fp32 TopK-10 edit generated greedily in both dtypes, and the share of new tokens equal
  up to the first difference (each dtype's own greedy decoding, so one flipped near-tie ends the agreement).
"""

from __future__ import annotations

from benchmarks.context import Context
from benchmarks.report import Row
from gradsae_nn.core.editing import edited_generate
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.core.sae import load_sae
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.selection import select
from gradsae_nn.models import load_model

NEW_TOKENS = 12


def rows_dtypes(ctx: Context, model_name: str) -> list[Row]:
    half = load_model(model_name, device=str(ctx.device), dtype="bfloat16")
    half_sae = load_sae(ctx.sae_spec, half, ctx.layer, dtype="bfloat16")
    full_scores = score_examples(ctx.model, ctx.sae, ctx.layer, ctx.inputs)
    half_scores = score_examples(half, half_sae, ctx.layer, ctx.inputs)
    overlap, same10, same50, agree = [], 0, 0, []
    for example, a, b in zip(ctx.inputs, full_scores, half_scores):
        top = lambda s, k: set(select(s.gradsae, k, "top", s.n_active_last).latents)  # noqa: E731
        overlap.append(len(top(a, 10) & top(b, 10)) / 10)
        same10 += top(a, 10) == top(b, 10)
        same50 += top(a, "50%") == top(b, "50%")
        edit = LatentEdit(zero=select(a.gradsae, 10, "top", a.n_active_last).latents)
        (ours,) = edited_generate(ctx.model, ctx.sae, ctx.layer, [list(example.prompt_ids)], [edit], NEW_TOKENS)
        (theirs,) = edited_generate(half, half_sae, ctx.layer, [list(example.prompt_ids)], [edit], NEW_TOKENS)
        common = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y), min(len(ours), len(theirs)))
        agree.append(common / max(1, len(ours)))
    n = len(ctx.inputs)
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return [Row("10", "bf16 vs fp32: GradSAE top-10 agreement and identical TopK sets", "the same examples in fp32",
                "—", "—", f"top-10 overlap {mean(overlap):.2f}; identical TopK-10 {same10}/{n}, TopK-50% {same50}/{n}",
                "report", "report",
                [f"bf16 model and SAE ({model_name}); per-example top-10 overlap "
                 f"{', '.join(f'{v:.1f}' for v in overlap)}; the fp32 TopK-10 edit generated {NEW_TOKENS} tokens in "
                 f"each dtype: share of tokens equal up to the first difference {mean(agree):.2f} (per example "
                 f"{', '.join(f'{v:.2f}' for v in agree)})."])]
