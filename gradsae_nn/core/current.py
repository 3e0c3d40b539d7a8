"""Edits of the newest token only (`positions="current"`), with a KV cache, exactly as the authors' loop.

The authors' steering loop has no KV cache: each step re-runs the whole sequence, and their hook edits
position `-1` only. So at every step the newest token is edited *for its own logits*, while every earlier
token is recomputed *unedited*: an edit's keys and values never reach a later step.

A KV cache would keep the edited keys/values of each newest token. The exact scheme here: each step runs
two columns on the cache — the previous newest token again, now unedited (its keys/values are the ones
every later step must see), and the new token, edited — reads the logits of the edited column, then drops
that column's entry from the cache (`crop(-1)`). The prompt pass edits its last column and drops it the
same way. Two tokens per step, so O(n) per step; token for token equal to the no-cache loop
(`tests/reference.py`, `authors_loop`; `tests/test_authors.py`).

With `splice="reconstruct"` every column runs on the SAE's reconstruction and the newest is also edited,
as in the authors' hook.

nnsight pitfall (0.8.1) — Symptom: `generate` cannot express this. Cause: a `generate` step runs only the
new token and appends its (edited) keys/values itself. Wrong: editing `module.output` inside
`tracer.iter[:]`, which is the `last`/`all` scheme. Right: a loop of single `trace` calls over a
`DynamicCache` this code crops (sliding-window layers record their past so they can be cropped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .editing import EditedGeneration


def _new_cache(lm: Any) -> Any:
    from transformers import DynamicCache

    cache = DynamicCache(config=lm.config)
    for layer in cache.layers:
        if hasattr(layer, "activate_past_recording"):
            layer.activate_past_recording()  # a sliding-window layer past its window can then be cropped
    return cache


def _step(lm: Any, module: Any, plan: "EditedGeneration", ids: torch.Tensor, mask: torch.Tensor,
          positions: torch.Tensor, cache: Any) -> torch.Tensor:
    """One forward of columns `ids` `[batch, n]` on `cache`, the last column edited; `[batch]` greedy tokens."""
    with torch.no_grad(), lm.trace({"input_ids": ids, "attention_mask": mask, "position_ids": positions},
                                   past_key_values=cache, use_cache=True, logits_to_keep=1):
        module.output = plan.applier(module.output, slice(-1, None))
        tokens = lm.output.logits[:, -1].argmax(-1).save()
    cache.crop(-1)                                                          # the edited column's keys/values go
    return tokens


def current_generate_trace(lm: Any, module: Any, plan: "EditedGeneration", eos: set[int]) -> torch.Tensor:
    """Kernel: greedy decoding with `plan`'s edit on the newest token of every step only; `[batch, width + new]`.

    eos: the ids that end a row; when the plan stops at newlines, so does a token whose text ends in a line
    break (as `editing.cut_after_stop`). A finished row gets pad tokens, as `generate` gives it. Local only.
    """
    kwargs = plan.kwargs
    max_new, pad = kwargs["max_new_tokens"], kwargs["pad_token_id"]
    newline = "stop_strings" in kwargs

    def stops(t: int) -> bool:
        if "min_new_tokens" in kwargs:
            return False
        return t in eos or (newline and lm.tokenizer.decode([t]).endswith("\n"))

    ids = plan.input_ids.to(lm.device)
    mask = plan.attention_mask.to(lm.device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = _new_cache(lm)
    token = _step(lm, module, plan, ids, mask, positions, cache)
    prev, prev_pos = ids[:, -1:], positions[:, -1:]                          # the column to re-run unedited
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    out = [ids]
    for step in range(max_new):
        token = torch.where(done, torch.full_like(token, pad), token)
        out.append(token[:, None])
        done |= torch.tensor([stops(t) for t in token.tolist()], device=ids.device)
        if bool(done.all()) or step == max_new - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        columns, column_pos = torch.cat([prev, token[:, None]], dim=1), torch.cat([prev_pos, prev_pos + 1], dim=1)
        prev, prev_pos = token[:, None], prev_pos + 1
        token = _step(lm, module, plan, columns, mask, column_pos, cache)
    return torch.cat(out, dim=1)
