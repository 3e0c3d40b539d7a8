"""Greedy generation with SAE latents edited at one layer on every forward step (KV cache on).

Each row of the batch has its own `LatentEdit`. With positions `all` the edit applies at every token of
the prompt pass and at every generated token; with `last` only at the last prompt token, in the prompt
pass; with `generated` at every generated token (every step after the prompt pass); with `current` at the
newest token of every step only, earlier tokens unedited (the authors' final steering version,
`core.current`).

nnsight pitfall (0.8.1) — Symptom: the generated ids come back undefined after an edit loop. Cause:
generation stops early (newline stop string, EOS), so a loop over `tracer.iter[:n]` asks for steps that
never run, and the statements after the loop in that invoke are silently skipped. Wrong: reading
`tracer.result` after the loop in the same invoke. Right: loop over `tracer.iter[:]` in one invoke and read
`tracer.result` in a second, empty invoke.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..errors import OptionError
from ..modes import Positions, SpliceMode, check_mode
from ..remote import run_traces
from .current import current_generate_trace
from .edits import BatchEdit, EditApplier, LatentEdit, resolve_edit_impl
from .generation import generate_kwargs, pad_id, pad_left
from .sae import SparseAutoencoder

if TYPE_CHECKING:
    from ..models import LoadedModel


@dataclass(frozen=True)
class EditedGeneration:
    """One edited `generate` call, planned here and runnable locally or on a server (`generate_trace`).

    input_ids, attention_mask: `[batch, width]` left-padded prompts; applier: the batch's edits (sliced:
    only the edited latents' rows); kwargs: greedy-decoding arguments (the tokenizer is the model's own,
    added where it runs).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    applier: EditApplier
    positions: str
    splice: str
    kwargs: dict


def plan_generation(model: "LoadedModel", sae: SparseAutoencoder, prompts: Sequence[Sequence[int]],
                    edits: Sequence[LatentEdit], max_new_tokens: int, splice: str = "lossless", positions: str = "all",
                    edit_impl: str = "auto", stop: str = "newline") -> EditedGeneration:
    """Check the options and build the padded batch and its edit applier (see `edited_generate`)."""
    if len(edits) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(edits)} edits")
    check_mode(splice, SpliceMode, "splice")
    check_mode(positions, Positions, "positions")
    if positions == "current" and model.remote is not None:
        raise OptionError("{positions} current runs a loop of traces over a KV cache it crops (core/current.py), "
                          "which a remote server cannot run; use {positions} all or last, or run it here")
    impl = resolve_edit_impl(sae, edit_impl, splice, remote=model.remote is not None)
    applier = EditApplier(sae, BatchEdit.build(edits, model.device, sae.W_dec.dtype), impl, splice)
    input_ids, attention_mask = pad_left(prompts, pad_id(model))
    kwargs = generate_kwargs(model, max_new_tokens, stop)
    kwargs.pop("tokenizer", None)
    return EditedGeneration(input_ids, attention_mask, applier, positions, splice, kwargs)


def generate_trace(lm: Any, module: Any, plan: EditedGeneration, inputs: dict | None = None,
                   overrides: dict | None = None) -> torch.Tensor:
    """Kernel: greedy `generate` with `plan`'s edit at the layer `module` on every step; `[batch, width + new]` ids.

    inputs / overrides: other model inputs and `generate` arguments than the plan's (`shared_generate_trace`
    continues from a KV cache)."""
    if inputs is None:
        inputs = {"input_ids": plan.input_ids.to(lm.device), "attention_mask": plan.attention_mask.to(lm.device)}
    kwargs = {**plan.kwargs, **(overrides or {})}
    if "stop_strings" in kwargs:
        kwargs["tokenizer"] = lm.tokenizer
    applier, positions, splice = plan.applier, plan.positions, plan.splice
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was never reached.*")  # the early stop, by design
        with torch.no_grad(), lm.generate(**kwargs) as tracer:
            with tracer.invoke(inputs):
                for step in tracer.iter[:]:
                    # every step must touch the layer: a step that reads nothing leaves the loop waiting
                    x = module.output
                    if positions == "all" or (positions == "generated" and step > 0):
                        module.output = applier(x)
                    elif positions == "last" and step == 0:
                        module.output = applier(x, slice(-1, None))
                    elif splice == "reconstruct":
                        module.output = applier(x, slice(0, 0))
            with tracer.invoke():
                output = tracer.result.save()
    return output


def shares_lower_layers(plan: EditedGeneration) -> bool:
    """Whether every row is the same unpadded prompt, edited at every position: then the layers up to the
    edited one compute the same thing for every row, and `shared_generate_trace` runs them once."""
    ids = plan.input_ids
    return (plan.positions == "all" and ids.shape[0] > 1 and bool(plan.attention_mask.all())
            and bool((ids == ids[:1]).all()))


def shared_generate_trace(lm: Any, module: Any, layer: int, plan: EditedGeneration) -> torch.Tensor:
    """Kernel: `generate_trace` for a plan whose rows share one prompt (`shares_lower_layers`).

    The prompt passes layers 0..`layer` once, at batch size 1; at `layer` its output is repeated for the
    `[batch]` rows and each row's edit applied, and the layers above run per row. The logits of that pass
    give each row's first new token, and `generate` continues from its KV cache (the shared layers' entries
    repeated per row), editing every step as `generate_trace` does. Same shapes above `layer` as a batched
    prefill, so the same tokens (tested); the layers below run 1 time instead of `batch` times.
    Returns `[batch, width + new]` ids; a row's tokens after a stop are cut by `cut_after_stop`.
    """
    from transformers import DynamicCache

    rows = plan.input_ids.shape[0]
    applier = plan.applier
    cache = DynamicCache(config=lm.config)
    with torch.no_grad(), lm.trace(plan.input_ids[:1].to(lm.device), past_key_values=cache, use_cache=True,
                                   logits_to_keep=1):
        module.output = applier(module.output.expand(rows, -1, -1).contiguous())
        first = lm.output.logits[:, -1].argmax(-1).save()
    for index in range(layer + 1):
        cache.layers[index].batch_repeat_interleave(rows)
    ids = torch.cat([plan.input_ids.to(lm.device), first[:, None]], dim=1)
    overrides = {"max_new_tokens": plan.kwargs["max_new_tokens"] - 1, "past_key_values": cache}
    if "min_new_tokens" in plan.kwargs:
        overrides["min_new_tokens"] = plan.kwargs["min_new_tokens"] - 1
    if overrides["max_new_tokens"] == 0:
        return ids
    return generate_trace(lm, module, plan, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, overrides)


def cut_after_stop(row: list[int], eos_ids: set[int], tokenizer: Any, stop_at_newline: bool) -> list[int]:
    """`row` cut after its first new token if that token ends the generation (an EOS id, or a token ending in
    a newline when stopping at newlines): what `generate` keeps for a row that stops at its first token.
    Later stops `generate` handles itself."""
    if row and (row[0] in eos_ids or (stop_at_newline and tokenizer.decode(row[:1]).endswith("\n"))):
        return row[:1]
    return row


def eos_ids(model: "LoadedModel") -> set[int]:
    """The token ids that end `generate` for `model` (its generation config, else the tokenizer's EOS)."""
    config = getattr(model.lm, "generation_config", None)
    ids = getattr(config, "eos_token_id", None) if config is not None else None
    if ids is None:
        ids = model.tokenizer.eos_token_id
    return set(ids) if isinstance(ids, (list, tuple)) else ({ids} if ids is not None else set())


def run_generations(model: "LoadedModel", layer: int, plans: Sequence[EditedGeneration],
                    label: str = "edited generation") -> list[list[list[int]]]:
    """Every plan's new token ids per row (pads removed); remotely all plans go in one request."""
    if not plans:
        return []
    shared = [shares_lower_layers(plan) for plan in plans]
    module, stops = model.layer(layer), eos_ids(model)
    calls = [(shared_generate_trace, (model.lm, module, layer, plan)) if s
             else (current_generate_trace, (model.lm, module, plan, stops)) if plan.positions == "current"
             else (generate_trace, (model.lm, module, plan)) for plan, s in zip(plans, shared)]
    outputs = run_traces(model, call_kernel, calls, long=True, label=label)
    pad = pad_id(model)
    results = []
    for plan, s, output in zip(plans, shared, outputs):
        rows = output[:, plan.input_ids.shape[1]:].tolist()
        if s:
            rows = [cut_after_stop(row, stops, model.tokenizer, "stop_strings" in plan.kwargs) for row in rows]
        results.append([[t for t in row if t != pad] for row in rows])
    return results


def call_kernel(kernel: Any, args: tuple) -> torch.Tensor:
    """`kernel(*args)`: lets one `run_traces` request mix kernels."""
    return kernel(*args)


def edited_generate(model: "LoadedModel", sae: SparseAutoencoder, layer: int, prompts: Sequence[Sequence[int]],
                    edits: Sequence[LatentEdit], max_new_tokens: int, splice: str = "lossless",
                    positions: str = "all", edit_impl: str = "auto", stop: str = "newline") -> list[list[int]]:
    """Greedy-decode each prompt with its edit applied at `layer`; returns each row's new token ids.

    prompts: token id lists (left-padded into one batch); edits: one per prompt (may be empty).
    In `reconstruct` mode the model runs on the SAE reconstruction and edits act on it.
    """
    plan = plan_generation(model, sae, prompts, edits, max_new_tokens, splice, positions, edit_impl, stop)
    return run_generations(model, layer, [plan])[0]
