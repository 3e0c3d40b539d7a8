"""Greedy generation with SAE latents edited at one layer on every forward step (KV cache on).

Each row of the batch has its own `LatentEdit`. With positions `all` the edit applies at every token of
the prompt pass and at every generated token; with `last` only at the last prompt token, in the prompt
pass (the authors' final steering version).

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

from .errors import UsageError
from .generation import generate_kwargs, pad_id, pad_left
from .remote import run_traces
from .splice import EDIT_POSITIONS, BatchEdit, EditApplier, LatentEdit, check_splice, resolve_edit_impl

if TYPE_CHECKING:
    from .models import LoadedModel


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
    splice_mode: str
    kwargs: dict


def plan_generation(model: "LoadedModel", sae: Any, prompts: Sequence[Sequence[int]], edits: Sequence[LatentEdit],
                    max_new_tokens: int, splice_mode: str = "lossless", positions: str = "all", impl: str = "auto",
                    stop_at_newline: bool = True) -> EditedGeneration:
    """Check the options and build the padded batch and its edit applier (see `edited_generate`)."""
    if len(edits) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(edits)} edits")
    check_splice(splice_mode)
    if positions not in EDIT_POSITIONS:
        raise UsageError(f"unknown --positions {positions!r}; use one of {', '.join(EDIT_POSITIONS)}")
    impl = resolve_edit_impl(sae, impl, splice_mode, remote=model.remote is not None)
    applier = EditApplier(sae, BatchEdit.build(edits, model.device, sae.W_dec.dtype), impl, splice_mode)
    input_ids, attention_mask = pad_left(prompts, pad_id(model))
    kwargs = generate_kwargs(model, max_new_tokens, stop_at_newline)
    kwargs.pop("tokenizer", None)
    return EditedGeneration(input_ids, attention_mask, applier, positions, splice_mode, kwargs)


def generate_trace(lm: Any, module: Any, plan: EditedGeneration) -> torch.Tensor:
    """Kernel: greedy `generate` with `plan`'s edit at the layer `module` on every step; `[batch, width + new]` ids."""
    inputs = {"input_ids": plan.input_ids.to(lm.device), "attention_mask": plan.attention_mask.to(lm.device)}
    kwargs = dict(plan.kwargs)
    if "stop_strings" in kwargs:
        kwargs["tokenizer"] = lm.tokenizer
    applier, positions, splice_mode = plan.applier, plan.positions, plan.splice_mode
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*was never reached.*")  # the early stop, by design
        with torch.no_grad(), lm.generate(**kwargs) as tracer:
            with tracer.invoke(inputs):
                for step in tracer.iter[:]:
                    # every step must touch the layer: a step that reads nothing leaves the loop waiting
                    x = module.output
                    if positions == "all":
                        module.output = applier(x)
                    elif step == 0:
                        module.output = applier(x, slice(-1, None))
                    elif splice_mode == "reconstruct":
                        module.output = applier(x, slice(0, 0))
            with tracer.invoke():
                output = tracer.result.save()
    return output


def run_generations(model: "LoadedModel", layer: int, plans: Sequence[EditedGeneration],
                    label: str = "edited generation") -> list[list[list[int]]]:
    """Every plan's new token ids per row (pads removed); remotely all plans go in one request."""
    if not plans:
        return []
    outputs = run_traces(model, generate_trace, [(model.lm, model.layer(layer), plan) for plan in plans], long=True,
                         label=label)
    pad = pad_id(model)
    return [[[t for t in row if t != pad] for row in output[:, plan.input_ids.shape[1]:].tolist()]
            for plan, output in zip(plans, outputs)]


def edited_generate(model: "LoadedModel", sae: Any, layer: int, prompts: Sequence[Sequence[int]],
                    edits: Sequence[LatentEdit], max_new_tokens: int, splice_mode: str = "lossless",
                    positions: str = "all", impl: str = "auto", stop_at_newline: bool = True) -> list[list[int]]:
    """Greedy-decode each prompt with its edit applied at `layer`; returns each row's new token ids.

    prompts: token id lists (left-padded into one batch); edits: one per prompt (may be empty).
    In `reconstruct` mode the model runs on the SAE reconstruction and edits act on it.
    """
    plan = plan_generation(model, sae, prompts, edits, max_new_tokens, splice_mode, positions, impl, stop_at_newline)
    return run_generations(model, layer, [plan])[0]
