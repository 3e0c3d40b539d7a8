"""Greedy, batched, left-padded generation through nnsight, and answer extraction.

Left padding keeps every row's last prompt token at the right edge, so the KV-cached decode appends
new tokens in the same column for all rows; the attention mask hides the pads and transformers derives
position ids from it, which is why a batched prediction equals the unbatched one (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch

from .remote import run_traces

if TYPE_CHECKING:
    from .models import LoadedModel

# Generation stops at the first newline: the answer is the first line, and base models otherwise go on
# inventing the next "Question:".
STOP_STRINGS = ("\n",)


def pad_left(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists → (`input_ids`, `attention_mask`), both `[batch, max_len]` long."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
    return input_ids, attention_mask


def pad_id(model: "LoadedModel") -> int:
    tokenizer = model.tokenizer
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def generate_kwargs(model: "LoadedModel", max_new_tokens: int, stop_at_newline: bool = True) -> dict:
    """Greedy decoding with the KV cache; `stop_at_newline=False` forces exactly `max_new_tokens` (benchmarks)."""
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1, "use_cache": True,
              "pad_token_id": pad_id(model)}
    if stop_at_newline:
        kwargs.update(stop_strings=list(STOP_STRINGS), tokenizer=model.tokenizer)
    else:
        kwargs.update(min_new_tokens=max_new_tokens)
    return kwargs


def greedy_generate(model: "LoadedModel", prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    stop_at_newline: bool = True) -> list[list[int]]:
    """Greedy-decode every prompt (KV cache on) and return each row's new token ids (pads removed).

    prompts: token id lists of any lengths; they are left-padded into one batch.
    """
    pad = pad_id(model)
    input_ids, attention_mask = pad_left(prompts, pad)
    kwargs = generate_kwargs(model, max_new_tokens, stop_at_newline)
    kwargs.pop("tokenizer", None)
    (output,) = run_traces(model, greedy_trace, [(model.lm, input_ids, attention_mask, kwargs)], long=True,
                           label="answering")
    new_tokens = output[:, input_ids.shape[1]:].tolist()
    return [[t for t in row if t != pad] for row in new_tokens]


def greedy_trace(lm: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """Kernel: plain greedy `generate` of a left-padded batch `[batch, width]`; returns `[batch, width + new]` ids."""
    inputs = {"input_ids": input_ids.to(lm.device), "attention_mask": attention_mask.to(lm.device)}
    kwargs = {**kwargs, "tokenizer": lm.tokenizer} if "stop_strings" in kwargs else kwargs
    with torch.no_grad(), lm.generate(inputs, **kwargs) as tracer:
        output = tracer.result.save()
    return output


def extract_answer(text: str) -> str:
    """The answer is the first non-empty line of the completion, stripped."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
