"""Greedy, batched, left-padded generation through nnsight, and answer extraction.

Left padding keeps every row's last prompt token at the right edge, so the KV-cached decode appends
new tokens in the same column for all rows; the attention mask hides the pads and transformers derives
position ids from it, which is why a batched prediction equals the unbatched one (tested). Prompts that
start alike (one template's demonstrations) share that prefix's forward pass and KV cache.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..modes import AnswerFormat, Stop, check_mode
from ..remote import run_traces

if TYPE_CHECKING:
    from ..models import LoadedModel

# Generation stops at the first newline: the answer is the first line, and base models otherwise go on
# inventing the next "Question:".
STOP_STRINGS = ("\n",)

# A shorter common prefix saves too little to be worth a forward pass of its own.
MIN_SHARED_PREFIX = 16


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


def generate_kwargs(model: "LoadedModel", max_new_tokens: int, stop: str = "newline") -> dict:
    """Greedy decoding with the KV cache, stopping as `stop` says (`modes.Stop`): at a newline or the model's
    end-of-sequence ids, at those ids only, or never (exactly `max_new_tokens`, for benchmarks)."""
    check_mode(stop, Stop, "stop")
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1, "use_cache": True,
              "pad_token_id": pad_id(model)}
    if stop == "newline":
        kwargs.update(stop_strings=list(STOP_STRINGS), tokenizer=model.tokenizer)
    elif stop == "length":
        kwargs.update(min_new_tokens=max_new_tokens)
    return kwargs


def common_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix every prompt shares, leaving each at least one token of its own."""
    first, shortest = prompts[0], min(len(p) for p in prompts)
    n = 0
    while n < shortest - 1 and all(p[n] == first[n] for p in prompts):
        n += 1
    return n


def prefix_layout(prompts: Sequence[Sequence[int]], prefix_len: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The shared prefix, then each row's own suffix left-padded: `[batch, prefix_len + max suffix]` ids and mask.

    Pads sit between prefix and suffix; the attention mask hides them and position ids follow the mask, so
    each row is its unpadded prompt.
    """
    suffix_ids, suffix_mask = pad_left([p[prefix_len:] for p in prompts], pad)
    prefix = torch.tensor([list(prompts[0][:prefix_len])] * len(prompts), dtype=torch.long)  # [batch, prefix_len]
    return (torch.cat([prefix, suffix_ids], dim=1),
            torch.cat([torch.ones_like(prefix), suffix_mask], dim=1))


def greedy_generate(model: "LoadedModel", prompts: Sequence[Sequence[int]], max_new_tokens: int,
                    stop: str = "newline", share_prefix: bool = True) -> list[list[int]]:
    """Greedy-decode every prompt (KV cache on) and return each row's new token ids (pads removed).

    prompts: token id lists of any lengths; they are left-padded into one batch. With `share_prefix` the
    prompts' common token prefix (the answer step's instruction and demonstrations: ~60% of each prompt)
    is run once, at batch size 1, and its KV cache serves every row (`MIN_SHARED_PREFIX` tokens or more;
    not when a sliding-window model's batch is wider than its window).
    """
    pad = pad_id(model)
    prefix_len = common_prefix_len(prompts) if share_prefix and len(prompts) > 1 else 0
    window = getattr(model.config, "sliding_window", None)
    if prefix_len < MIN_SHARED_PREFIX or (window and max(len(p) for p in prompts) >= window):
        # a sliding window counts columns, and the pads between prefix and suffix would push the prefix out of it
        prefix_len = 0
    input_ids, attention_mask = prefix_layout(prompts, prefix_len, pad)
    kwargs = generate_kwargs(model, max_new_tokens, stop)
    kwargs.pop("tokenizer", None)
    (output,) = run_traces(model, greedy_trace, [(model.lm, input_ids, attention_mask, prefix_len, kwargs)],
                           long=True, label="answering")
    new_tokens = output[:, input_ids.shape[1]:].tolist()
    return [[t for t in row if t != pad] for row in new_tokens]


def greedy_trace(lm: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_len: int,
                 kwargs: dict) -> torch.Tensor:
    """Kernel: plain greedy `generate` of a batch `[batch, width]`; returns `[batch, width + new]` ids.

    With `prefix_len > 0` the first `prefix_len` columns (the same in every row) are run once, and `generate`
    starts from their KV cache, repeated for every row.
    """
    inputs = {"input_ids": input_ids.to(lm.device), "attention_mask": attention_mask.to(lm.device)}
    kwargs = {**kwargs, "tokenizer": lm.tokenizer} if "stop_strings" in kwargs else kwargs
    with torch.no_grad():
        if prefix_len:
            with lm.trace(inputs["input_ids"][:1, :prefix_len], use_cache=True, logits_to_keep=1):
                cache = lm.output.past_key_values.save()
            cache.batch_repeat_interleave(input_ids.shape[0])
            kwargs = {**kwargs, "past_key_values": cache}
        with lm.generate(inputs, **kwargs) as tracer:
            output = tracer.result.save()
    return output


_BRACKETS = re.compile(r"\[\s*(.*?)\s*\]")


def extract_answer(text: str, answer_format: str = "line") -> str:
    """The answer in a completion (`modes.AnswerFormat`).

    line: the first non-empty line, stripped. brackets (the authors' extractor, for "Result = [[ label ]]"):
    the first `[...]` match's content if there is one, else the whole completion; then every `[`, `]` and
    `=` removed, stripped. So "Result = [[ Denver Broncos ]]" gives "Denver Broncos" (the match starts at the
    first `[` and ends at the first `]`, leaving the inner `[` to be removed).
    """
    check_mode(answer_format, AnswerFormat, "answer_format")
    if answer_format == "brackets":
        match = _BRACKETS.search(text)
        answer = match.group(1) if match else text
        return answer.replace("[", "").replace("]", "").replace("=", "").strip()
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def answer_stop(answer_format: str) -> str:
    """The generation stop rule that goes with an answer format: a line ends at a newline; the bracket format
    runs to end-of-sequence (the answer follows "Result = ", which may come after line breaks)."""
    return "newline" if check_mode(answer_format, AnswerFormat, "answer_format") == "line" else "eos"
