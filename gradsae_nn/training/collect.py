"""Activations to train on: an nnsight pass stopped after the deepest requested layer (several layers at
once), position 0 and massive tokens left out (as in `quality`), fp16, prompts' shared head run once on a KV
cache, checkpointed in shards so an interrupted collection resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import torch

from ..errors import OptionError
from ..results.progress import make_progress

if TYPE_CHECKING:
    from ..models import LoadedModel
    from .corpus import TrainSequence


def collect_activations(model: "LoadedModel", layers: list[int], sequences: Iterator["TrainSequence"],
                        n_tokens: int, thresholds: dict[int, float], batch_size: int = 8,
                        share_prefix: bool = True, shards: Path | None = None,
                        shard_tokens: int = 200_000) -> dict[int, torch.Tensor]:
    """Residual activations `[n_tokens, d_model]` (fp16) per layer: every sequence's positions from its `start`
    on (position 0 never), massive tokens (norm above `thresholds[layer]`) left out, as in `quality`.

    share_prefix: sequences whose skipped head `ids[:start]` (start > 1: a prompt's instruction and
        demonstrations, the same in every prompt) is shared run only their own tail, on a KV cache of that
        head computed once; the tails are right-padded so each keeps its own positions. Same activations as
        whole sequences (up to rounding; `tests/test_sae_training.py`), about half the compute for prompts.
    shards: a folder to checkpoint into every `shard_tokens` tokens (`ShardLog`), and on an interrupt
        (Ctrl-C, or SIGTERM under `cli.run`) into a last shard holding every batch finished before it; an
        interrupted collection resumes from its last shard, with the same result as an uninterrupted one
        (`sequences` must be the same deterministic iterator).
    """
    store = {layer: torch.empty(n_tokens, model.d_model, dtype=torch.float16) for layer in layers}
    filled = dict.fromkeys(layers, 0)
    heads: dict[tuple[int, ...], Any] = {}
    log = ShardLog(shards, layers) if shards is not None else None
    consumed = log.restore(store, filled) if log else 0
    for _ in zip(range(consumed), sequences):
        pass                                                                # already in the shards
    done = dict(filled), consumed                  # the state after the last whole batch: what a shard may hold
    try:
        with make_progress() as progress:
            task = progress.add_task(f"activations L{','.join(map(str, layers))}", total=n_tokens,
                                     completed=min(filled.values()))
            while min(filled.values()) < n_tokens:
                if log and min(filled.values()) - log.saved_at >= shard_tokens:
                    log.save(store, filled, consumed)
                consumed = _collect_batch(model, layers, sequences, store, filled, thresholds, batch_size,
                                          consumed, share_prefix, heads, n_tokens)
                done = dict(filled), consumed
                progress.update(task, completed=min(filled.values()))
    except KeyboardInterrupt:
        if log and min(done[0].values()) > log.saved_at:
            log.save(store, *done)               # a batch cut short is left out: its rows are partly stored
        raise
    return store


def _collect_batch(model: "LoadedModel", layers: list[int], sequences: Iterator["TrainSequence"],
                   store: dict[int, torch.Tensor], filled: dict[int, int], thresholds: dict[int, float],
                   batch_size: int, consumed: int, share_prefix: bool, heads: dict, n_tokens: int) -> int:
    """One batch of `sequences` into `store` (advancing `filled`); returns the sequences consumed so far."""
    chunk = [s for _, s in zip(range(batch_size), sequences)]
    if not chunk:
        raise OptionError(f"the corpus ran out after {min(filled.values())} tokens; ask for fewer {{tokens}}")
    groups: dict[tuple[int, ...], list] = {}
    for seq in chunk:
        groups.setdefault(seq.ids[:seq.start] if share_prefix and seq.start > 1 else (), []).append(seq)
    for head, group in groups.items():
        saved, keep = _tail_pass(model, layers, group, head, heads) if head else _whole_pass(model, layers, group)
        for layer in layers:
            x = saved[layer].float().cpu()
            rows = x[keep & (x.norm(dim=-1) <= thresholds[layer])]
            n = min(rows.shape[0], n_tokens - filled[layer])
            store[layer][filled[layer]:filled[layer] + n] = rows[:n].to(torch.float16)
            filled[layer] += n
    return consumed + len(chunk)


class ShardLog:
    """Checkpoints of a collection in a folder: `shard-<i>-L<layer>.pt` (the rows added since the previous
    shard) and `progress.json` (rows per layer and sequences consumed at each shard), written after them."""

    def __init__(self, folder: Path, layers: list[int]) -> None:
        self.folder, self.layers = folder, layers
        folder.mkdir(parents=True, exist_ok=True)
        self.progress = folder / "progress.json"
        self.entries: list[dict] = json.loads(self.progress.read_text()) if self.progress.is_file() else []
        self.saved_at = min(self.entries[-1]["filled"].values()) if self.entries else 0

    def restore(self, store: dict[int, torch.Tensor], filled: dict[int, int]) -> int:
        """Fill `store` and `filled` from the shards; the number of sequences they consumed."""
        for i, entry in enumerate(self.entries):
            for layer in self.layers:
                rows = torch.load(self.folder / f"shard-{i}-L{layer}.pt")
                store[layer][filled[layer]:filled[layer] + rows.shape[0]] = rows
                filled[layer] += rows.shape[0]
                assert filled[layer] == entry["filled"][str(layer)], "shard rows disagree with progress.json"
        return self.entries[-1]["sequences"] if self.entries else 0

    def save(self, store: dict[int, torch.Tensor], filled: dict[int, int], consumed: int) -> None:
        i = len(self.entries)
        before = self.entries[-1]["filled"] if self.entries else {str(layer): 0 for layer in self.layers}
        for layer in self.layers:
            tmp = self.folder / f".shard-{i}-L{layer}.tmp"
            torch.save(store[layer][before[str(layer)]:filled[layer]].clone(), tmp)
            tmp.replace(self.folder / f"shard-{i}-L{layer}.pt")
        self.entries.append({"sequences": consumed, "filled": {str(layer): filled[layer] for layer in self.layers}})
        tmp = self.folder / ".progress.tmp"
        tmp.write_text(json.dumps(self.entries))
        tmp.replace(self.progress)
        self.saved_at = min(filled.values())


def _whole_pass(model: "LoadedModel", layers: list[int], group: list) -> tuple[dict, torch.Tensor]:
    """Layer outputs `[batch, width, d]` of whole left-padded sequences, and the mask of positions to keep."""
    from ..core.generation import pad_id
    from ..core.targets import (  # the same left-padded layout and position ids
        ScoringInput,
        build_batch,
    )

    batch = build_batch([ScoringInput(s.ids[:-1], s.ids[-1:]) for s in group], pad_id(model))
    width = batch.input_ids.shape[1]
    starts = torch.tensor([width - len(s.ids) + s.start for s in group])[:, None]
    keep = batch.attention_mask.bool() & (torch.arange(width)[None, :] >= starts)
    return _layer_outputs(model, layers, batch.model_inputs(model.device)), keep


def _tail_pass(model: "LoadedModel", layers: list[int], group: list, head: tuple[int, ...],
               heads: dict) -> tuple[dict, torch.Tensor]:
    """Layer outputs of each sequence's tail `ids[len(head):]` (right-padded) on the head's KV cache."""
    import copy

    from ..core.generation import pad_id

    if head not in heads:
        with torch.no_grad(), model.lm.trace(torch.tensor([head], device=model.device), use_cache=True,
                                             logits_to_keep=1):
            heads[head] = model.lm.output.past_key_values.save()
    cache = copy.deepcopy(heads[head])
    cache.batch_repeat_interleave(len(group))
    tails = [s.ids[len(head):] for s in group]
    width = max(map(len, tails))
    ids = torch.full((len(group), width), pad_id(model), dtype=torch.long)
    mask = torch.zeros(len(group), width, dtype=torch.long)
    for row, tail in enumerate(tails):
        ids[row, :len(tail)], mask[row, :len(tail)] = torch.tensor(tail), 1
    inputs = {"input_ids": ids.to(model.device), "past_key_values": cache,
              "attention_mask": torch.cat([torch.ones(len(group), len(head), dtype=torch.long), mask], 1).to(model.device)}
    return _layer_outputs(model, layers, inputs), mask.bool()


def _layer_outputs(model: "LoadedModel", layers: list[int], inputs: dict) -> dict:
    saved = {}
    with torch.no_grad(), model.lm.trace(inputs) as tracer:
        for layer in sorted(layers):
            saved[layer] = model.layer(layer).output.save()
        tracer.stop()                                                       # skip the layers above the deepest
    return saved
