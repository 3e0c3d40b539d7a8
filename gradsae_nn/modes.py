"""The named modes of the method, as `Literal` types: one definition each, used by the configuration (and so
the command line's choices) and by the library's checks (`check_mode`)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from .errors import OptionError, literal

Dtype = Literal["float32", "bfloat16", "float16"]
SpliceMode = Literal["lossless", "reconstruct"]
"""lossless: model outputs unchanged, gradients reach the latents; reconstruct: the model runs on the SAE's
reconstruction (the authors' code)."""
Target = Literal["answer-logprob", "answer-prob", "first-token-prob", "format-token-prob"]
"""The target T whose gradient scores latents (see `core.targets`)."""
ScoredPositions = Literal["prompt", "all-at-target-step"]
"""Which positions' `relu(∂T/∂h·h)` are averaged: the prompt (first token left out unless `include_bos`), or
every position of the sequence at the target's step (BOS, prompt and the generated prefix; the authors' code)."""
AnswerFormat = Literal["line", "brackets"]
"""line: the answer is the completion's first non-empty line, generation stops at a newline; brackets: the
first `[...]` of the completion with `[`, `]`, `=` removed, generation stops at end-of-sequence only (the
authors' "Result = [[ label ]]" format)."""
AnswerSplice = Literal["none", "reconstruct"]
"""How the correct set is found: on the original model, or with the SAE's reconstruction spliced in (the
authors' code)."""
Protocol = Literal["project", "authors"]
"""A named preset of every option above (see `config.presets`): the project's principled defaults, or the
authors' code as published."""
Piece = Literal["splice", "scored-positions", "pad-topk", "include-bos", "correct-f1", "answer-splice", "format"]
"""One piece of the authors' protocol that the protocol ablation adds to the project preset on its own
(`config.presets.PIECES`: the options each piece sets)."""
Stop = Literal["newline", "eos", "length"]
"""When greedy generation stops: at a newline or end-of-sequence, at end-of-sequence only, or after exactly
`max_new_tokens` (benchmarks)."""
EditImpl = Literal["auto", "sliced", "full"]
"""sliced: only the edited latents' rows (ReLU/JumpReLU); full: whole encode/decode; auto: sliced where exact."""
Scoring = Literal["trace", "x-grad"]
"""How ∂T/∂h is obtained: splice the SAE into the trace, or save x and ∂T/∂x and score here (the remote path)."""
Method = Literal["gradsae", "baseline", "attribution", "integrated-gradients", "exact"]
"""How latents are ranked: GradSAE's influence score; the baseline's mean activation; the unclamped first-order
estimate Σ_n ∂T/∂h·h; integrated gradients; or the measured drop in T when the latent is zeroed (see
`core.methods`). The paper compares the first two (`METHODS`)."""
Which = Literal["top", "bottom"]
Positions = Literal["all", "last", "current", "generated"]
"""Where an edit applies: every prompt and generated token; only the last prompt token (prompt pass); the
newest token of every step only, earlier tokens recomputed unedited (the authors' no-cache loop; see
`core.current`); or every generated token and no prompt token (so the first new token, predicted by the
prompt pass, is never edited)."""
ValueSource = Literal["mean-activation", "last-activation", "score"]
PartnerPool = Literal["different", "correct", "any"]
"""Steering partners (see `runs.partners`): every other question on the context whose answer differs from the
example's both ways (F1 = 0); the other correctly answered questions; or any other answered question."""
Variant = Literal["swap", "inject-only", "random"]
"""A steering edit: zero own TopK and inject the partner's (the paper); inject the partner's without zeroing
own (control); zero own TopK and inject K random latents active in the partner, with the same values
(control)."""
Population = Literal["correct", "answered"]

METHODS: tuple[Method, ...] = ("gradsae", "baseline")
ALL_METHODS: tuple[Method, ...] = get_args(Method)
WHICH: tuple[Which, ...] = get_args(Which)
VARIANTS: tuple[Variant, ...] = get_args(Variant)


def choices(mode: Any) -> tuple[str, ...]:
    """The values of a `Literal` mode type."""
    return get_args(mode)


def check_mode(value: Any, mode: Any, name: str) -> Any:
    """`value` if it is one of `mode`'s values; else an `OptionError` naming option `name` and the choices."""
    allowed = choices(mode)
    if value not in allowed:
        raise OptionError(f"unknown {{{name}}} {literal(value)}; use one of {', '.join(allowed)}")
    return value
