"""Rows 3 and 3b: the library's edited generate (every position; the newest token only) vs the authors' loop.

The authors' approach, as described in issue 7: a Python loop that appends one greedy token at a time and
re-runs the *whole* sequence through the model for each one (no KV cache), with parameter gradients on
(the model and SAE are trainable modules, so autograd records every forward), the SAE spliced in by a
forward hook that returns the reconstruction with the edited latents zeroed (their `reconstruct` splice).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from benchmarks.context import N_EDITED, Context
from benchmarks.core import ours_generate
from benchmarks.report import Row, met
from benchmarks.timing import fmt, interleaved, paired_ratio
from gradsae_nn.core.editing import edited_generate


@contextmanager
def gradients_on(*modules: Any) -> Iterator[None]:
    """Parameters require grad inside (the authors' setting); the suite's frozen state is restored after."""
    before = [[p.requires_grad for p in m.parameters()] for m in modules]
    try:
        for m in modules:
            m.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for m, flags in zip(modules, before):
            for p, flag in zip(m.parameters(), flags):
                p.requires_grad_(flag)


def authors_generate(ctx: Context, prompt: tuple[int, ...], zero: tuple[int, ...], new_tokens: int,
                     newest_only: bool = False) -> list[int]:
    """Greedy tokens from re-running the full sequence per token, SAE reconstruction with `zero` latents at 0
    (at every position, or with `newest_only` at position −1 only: their steering hook)."""
    sae = ctx.sae
    latents = torch.tensor(zero, dtype=torch.long, device=ctx.device)

    def hook(_module, _inputs, out):
        h = sae.encode(out)
        if newest_only:
            h = torch.cat([h[:, :-1], h[:, -1:].index_fill(-1, latents, 0.0)], dim=1)
        else:
            h = h.index_fill(-1, latents, 0.0)
        return sae.decode(h).to(out.dtype)

    ids = torch.tensor([prompt], device=ctx.device)
    handle = ctx.hf.model.layers[ctx.layer].register_forward_hook(hook)
    try:
        with gradients_on(ctx.hf, sae):
            for _ in range(new_tokens):
                logits = ctx.hf(input_ids=ids, use_cache=False).logits
                ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    finally:
        handle.remove()
    return ids[0, len(prompt):].tolist()


def row_authors(ctx: Context) -> Row:
    prompt, zero = ctx.inputs[0].prompt_ids, ctx.edits[0].zero
    t = interleaved({"ours": lambda: ours_generate(ctx, 0),
                     "authors": lambda: authors_generate(ctx, prompt, zero, ctx.gen_tokens)}, ctx.repeats,
                    warmups={"authors": lambda: authors_generate(ctx, prompt, zero, 2)}, sync=ctx.sync)
    speedup = t["authors"].median / t["ours"].median
    pr = paired_ratio(t["authors"], t["ours"])
    return Row("3", f"edited generate, {ctx.gen_tokens} new tokens (library: KV cache, sliced edit, no grad)",
               "authors' approach: re-run the whole sequence per token, no KV cache, parameter grads on, "
               "SAE reconstruction hook", t["ours"].describe(), t["authors"].describe(), f"{speedup:.1f}× faster",
               "≥ 5× faster", met(speedup >= 5),
               [f"same prompt ({len(prompt)} tokens) and the same {N_EDITED} zeroed latents; the authors' loop warms "
                f"up on 2 tokens. Paired speed-up median {fmt(pr.median)}×, IQR [{fmt(pr.q1)}–{fmt(pr.q3)}]."])


def current_generate(ctx: Context, prompt: tuple[int, ...], zero: tuple[int, ...], new_tokens: int) -> list[int]:
    """The library's `positions="current"` (KV cache, two tokens per step), reconstruct splice, exactly
    `new_tokens` tokens."""
    from gradsae_nn.core.edits import LatentEdit

    return edited_generate(ctx.model, ctx.sae, ctx.layer, [prompt], [LatentEdit(zero=zero)], new_tokens,
                           splice="reconstruct", positions="current", stop="length")[0]


def row_current(ctx: Context) -> Row:
    """Row 3b: the newest-token edit on a KV cache vs the authors' no-cache loop, same edit, same tokens."""
    prompt, zero = ctx.inputs[0].prompt_ids, ctx.edits[0].zero
    ours = current_generate(ctx, prompt, zero, ctx.gen_tokens)
    theirs = authors_generate(ctx, prompt, zero, ctx.gen_tokens, newest_only=True)
    t = interleaved({"ours": lambda: current_generate(ctx, prompt, zero, ctx.gen_tokens),
                     "authors": lambda: authors_generate(ctx, prompt, zero, ctx.gen_tokens, newest_only=True)},
                    ctx.repeats, warmups={"authors": lambda: authors_generate(ctx, prompt, zero, 2, newest_only=True)},
                    sync=ctx.sync)
    speedup = t["authors"].median / t["ours"].median
    pr = paired_ratio(t["authors"], t["ours"])
    same = sum(a == b for a, b in zip(ours, theirs))
    return Row("3b", f"newest-token edit (positions current), {ctx.gen_tokens} new tokens (library: KV cache, the "
                     f"previous token re-run unedited + the new one edited per step)",
               "authors' steering loop: re-run the whole sequence per token, edit at position −1",
               t["ours"].describe(), t["authors"].describe(), f"{speedup:.1f}× faster", "≥ 5× faster",
               met(speedup >= 5),
               [f"reconstruct splice, the same {N_EDITED} latents zeroed at the newest token; {same} of "
                f"{len(theirs)} tokens equal (tests/test_authors.py checks equality up to near-ties). Paired "
                f"speed-up median {fmt(pr.median)}×, IQR [{fmt(pr.q1)}–{fmt(pr.q3)}]."])
