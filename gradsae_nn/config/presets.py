"""Protocols: named presets of the options that distinguish the project's method from the authors' code.

An option a preset governs defaults to None ("from `--protocol`"); `resolve` fills every None from the
config's protocol, so an option given explicitly always wins and the two presets can be mixed piece by
piece. What each piece does is in `docs/method.md` ("Protocols").
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..modes import Protocol, check_mode

PRESETS: dict[str, dict[str, Any]] = {
    "project": {
        "max_new_tokens": 16, "answer_format": "line", "answer_splice": "none", "splice": "lossless",
        "target": "answer-logprob", "scored_positions": "prompt", "pad_topk": False, "positions": "all",
        "value_source": "mean-activation", "partners": "different",
    },
    "authors": {
        "prompt": "authors-open-turn", "max_new_tokens": 50, "answer_format": "brackets", "correct_f1": 0.9,
        "answer_splice": "reconstruct", "splice": "reconstruct", "target": "format-token-prob",
        "scored_positions": "all-at-target-step", "pad_topk": True, "positions": "current", "value_source": "score",
        "partners": "correct",
    },
}

# The authors' protocol taken apart (`experiments/protocol_ablation.py`): each piece is the options it sets, at
# the authors' values. `include-bos` is the BOS position their every-position mean contains; `format` is their
# prompt, answer length, extractor and format-token target, which only work together.
PIECES: dict[str, tuple[str, ...]] = {
    "splice": ("splice",), "scored-positions": ("scored_positions",), "pad-topk": ("pad_topk",),
    "include-bos": ("include_bos",), "correct-f1": ("correct_f1",), "answer-splice": ("answer_splice",),
    "format": ("prompt", "max_new_tokens", "answer_format", "target"),
}
DEFAULT_PIECES = ("splice", "scored-positions", "pad-topk", "include-bos", "correct-f1")


def piece_values(piece: str) -> dict[str, Any]:
    """The options `piece` sets, at the authors' values."""
    return {name: True if name == "include_bos" else PRESETS["authors"][name] for name in PIECES[piece]}


def piece_flags(piece: str) -> str:
    """`piece` as the perturbation's command-line options, e.g. "--splice reconstruct", "--pad-topk"."""
    return " ".join(f"--{name.replace('_', '-')}" + ("" if value is True else f" {value}")
                    for name, value in piece_values(piece).items())


# Options added after results folders existed: `run_config.json` records them only when they differ from
# these values, so a folder written before they existed still resumes.
LATER_OPTIONS: dict[str, Any] = {"protocol": "project", "answer_format": "line", "answer_splice": "none",
                                 "scored_positions": "prompt", "pad_topk": False, "methods": ("gradsae", "baseline"),
                                 "ig_steps": 8, "exact_candidates": 50, "value_scale": 1.0}


def preset_text(name: str) -> str:
    """`--help` text for an option the presets govern: each protocol's value."""
    values = {p: PRESETS[p].get(name) for p in PRESETS}
    shown = {p: ("on" if v is True else "off" if v is False else "the model's default" if v is None else v)
             for p, v in values.items()}
    return "; ".join(f"{p}: {v}" for p, v in shown.items()) + " (from --protocol)"


def resolve(config: Any, protocol: str) -> None:
    """Set every governed option left at None in `config`'s parts (nested ones included) to `protocol`'s value,
    in place (a config resolves itself in its own `__post_init__`, before its checks); a part that changed
    runs its own checks again."""
    check_mode(protocol, Protocol, "protocol")
    preset = PRESETS[protocol]
    for f in dataclasses.fields(config):
        if not f.metadata.get("part"):
            continue
        part = getattr(config, f.name)
        resolve(part, protocol)
        changed = False
        for g in dataclasses.fields(part):
            if not g.metadata.get("part") and getattr(part, g.name) is None and g.name in preset:
                object.__setattr__(part, g.name, preset[g.name])
                changed = True
        if changed and hasattr(part, "__post_init__"):
            part.__post_init__()
