"""Rows 1–2: GradSAE core overheads against plain PyTorch / Hugging Face, same input, same process.

    python benchmarks/core.py [--repeats 5] [--model smollm2-135m-it] [--layer 15]   # rows 1–2 only

1. GradSAE scoring of one SQuAD example (nnsight trace, lossless splice, forward + backward)
   vs plain PyTorch forward + backward to the layer (a forward hook, `torch.autograd.grad`).   goal ≤ 1.10×
2. Edited greedy generate, `--gen-tokens` (32) new tokens, the example's GradSAE top 20 zeroed at every step
   vs unedited Hugging Face `generate` (KV cache on both).                                       goal ≤ 1.15×
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.context import N_EDITED, Context  # noqa: E402
from benchmarks.report import Row, met  # noqa: E402
from benchmarks.timing import fmt, interleaved, paired_ratio  # noqa: E402
from gradsae_nn.core.editing import edited_generate  # noqa: E402
from gradsae_nn.core.scoring import score_examples  # noqa: E402
from gradsae_nn.core.targets import ScoringInput, build_batch, target_values  # noqa: E402


def plain_forward_backward(ctx: Context, example: ScoringInput) -> torch.Tensor:
    """∂T/∂x at the layer for one example with a forward hook and `torch.autograd.grad` (no nnsight, no SAE),
    on the same model inputs as scoring (`ScoringBatch.model_inputs`)."""
    batch = build_batch([example], pad_id=0)
    store = {}

    def hook(_module, _inputs, out):
        out.requires_grad_(True)
        store["x"] = out

    handle = ctx.hf.model.layers[ctx.layer].register_forward_hook(hook)
    try:
        logits = ctx.hf(**batch.model_inputs(ctx.device)).logits
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(target_values(logits, batch, "answer-logprob").sum(), store["x"])
    return grad


def hf_generate(ctx: Context, prompts: list[tuple[int, ...]], new_tokens: int) -> torch.Tensor:
    """Unedited greedy `generate` of the transformers model, KV cache on, exactly `new_tokens` tokens.

    Left-padded like the library's generation, so the same helper serves batch 1 and batch n."""
    from gradsae_nn.core.generation import pad_id, pad_left

    ids, mask = pad_left(prompts, pad_id(ctx.model))
    with torch.no_grad():
        return ctx.hf.generate(ids.to(ctx.device), attention_mask=mask.to(ctx.device), max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                               pad_token_id=pad_id(ctx.model))


def ours_generate(ctx: Context, index: int) -> list[list[int]]:
    """The library's edited generate of example `index` with its edit, exactly `ctx.gen_tokens` tokens."""
    return edited_generate(ctx.model, ctx.sae, ctx.layer, [ctx.inputs[index].prompt_ids], [ctx.edits[index]],
                           ctx.gen_tokens, stop="length")


def row_scoring(ctx: Context) -> Row:
    example = ctx.inputs[0]
    t = interleaved({"gradsae": lambda: score_examples(ctx.model, ctx.sae, ctx.layer, [example]),
                     "plain": lambda: plain_forward_backward(ctx, example)}, ctx.repeats, sync=ctx.sync)
    ratio = t["gradsae"].median / t["plain"].median
    pr = paired_ratio(t["gradsae"], t["plain"])
    return Row("1", "GradSAE scoring, 1 example (nnsight, lossless splice, fwd + bwd)",
               "plain PyTorch fwd + bwd to layer L (hook + autograd.grad)", t["gradsae"].describe(),
               t["plain"].describe(), f"{ratio:.3f}×", "≤ 1.10×", met(ratio <= 1.10),
               [f"prompt {len(example.prompt_ids)} + answer {len(example.answer_ids)} tokens, same model inputs on "
                f"both sides; paired ratio median {fmt(pr.median)}×, IQR [{fmt(pr.q1)}–{fmt(pr.q3)}]."])


def row_generate(ctx: Context) -> Row:
    prompt = ctx.inputs[0].prompt_ids
    t = interleaved({"edited": lambda: ours_generate(ctx, 0),
                     "hf": lambda: hf_generate(ctx, [prompt], ctx.gen_tokens)}, ctx.repeats, sync=ctx.sync)
    ratio = t["edited"].median / t["hf"].median
    pr = paired_ratio(t["edited"], t["hf"])
    return Row("2", f"edited greedy generate, {ctx.gen_tokens} new tokens, GradSAE top {N_EDITED} zeroed at every step "
                    "(nnsight)", "unedited HF `generate`, KV cache", t["edited"].describe(), t["hf"].describe(),
               f"{ratio:.3f}×", "≤ 1.15×", met(ratio <= 1.15),
               [f"paired ratio median {fmt(pr.median)}×, IQR [{fmt(pr.q1)}–{fmt(pr.q3)}]; sliced edit "
                f"({len(ctx.edits[0].zero)} latents), both decode exactly {ctx.gen_tokens} tokens."])


def main() -> None:
    from benchmarks.options import build_parser, setup

    args = build_parser(__doc__).parse_args()
    ctx = setup(args, n_examples=1)
    for row in (row_scoring(ctx), row_generate(ctx)):
        print(f"{row.number}. {row.what}: {row.a} vs {row.b} → {row.ratio} (goal {row.goal}: {row.met})")


if __name__ == "__main__":
    main()
