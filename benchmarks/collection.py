"""Row 11: collecting SAE-training activations with a bfloat16 copy of the model against the float32 model
(`experiments/train_sae.py --collect-dtype`), side by side, and how far the bfloat16 activations are from
float32's.

Both collect the suite's prompts (whole, position 0 left out, no massive-token filter) at the SAE's layer
with `training.collect.collect_activations`, the pass stopped after that layer.
"""

from __future__ import annotations

import torch

from benchmarks.context import Context
from benchmarks.report import Row
from benchmarks.timing import fmt, interleaved, paired_ratio
from gradsae_nn.models import load_model
from gradsae_nn.training.collect import collect_activations
from gradsae_nn.training.corpus import TrainSequence


def rows_collection(ctx: Context, model_name: str) -> list[Row]:
    half = load_model(model_name, device=str(ctx.device), dtype="bfloat16")
    sequences = [TrainSequence(tuple(ex.prompt_ids), 1) for ex in ctx.inputs]
    n_tokens = sum(len(s.ids) - 1 for s in sequences)
    limits = {ctx.layer: float("inf")}

    def collect(model):
        return collect_activations(model, [ctx.layer], iter(sequences), n_tokens, limits, share_prefix=False)[ctx.layer]

    fns = {"bf16": lambda: collect(half), "fp32": lambda: collect(ctx.model)}
    t = interleaved(fns, ctx.repeats, sync=ctx.sync)
    a, b = collect(half).float(), collect(ctx.model).float()
    rel = float((a - b).norm() / b.norm())
    worst = float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())
    ratio = t["fp32"].median / t["bf16"].median
    pr = paired_ratio(t["fp32"], t["bf16"])
    return [Row("11", f"SAE-training activations at L{ctx.layer}, bf16 model ({n_tokens} tokens)",
                "the fp32 model", t["bf16"].describe(), t["fp32"].describe(), f"{ratio:.2f}× faster", "report",
                "report",
                [f"{len(sequences)} prompts, {n_tokens} tokens per collection; paired ratio median {fmt(pr.median)}×, "
                 f"IQR [{fmt(pr.q1)}–{fmt(pr.q3)}]; bf16 activations off fp32's by {rel:.4f} (relative Frobenius "
                 f"error), {worst:.4f} at most for one token; torch threads {torch.get_num_threads()}."])]
