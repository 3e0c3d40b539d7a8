"""Option machinery of the configuration: how a field documents itself, and walking nested configs.

See `gradsae_nn.config` for what the metadata means.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, Iterator

from ..errors import OptionError, literal

DEFAULT_KS = ("1", "10", "20", "30", "50%")
# The order in which result-changing options appear in a results folder's name (after `sae`).
RESULT_ORDER = ("protocol", "data", "seed", "prompt", "answer_format", "answer_splice", "splice", "target",
                "scored_positions", "include_bos", "pad_topk", "edit_impl", "scoring", "correct_f1", "max_new_tokens",
                "dtype", "k", "partner_seed", "partners", "value_source", "value_scale", "value_scales", "variants",
                "methods", "ig_steps", "exact_candidates", "positions", "population")


def option(default: Any, help: str, *, result: bool = False, flags: tuple[str, ...] | None = None,
           metavar: str | None = None, choices: tuple[str, ...] | None = None, default_text: str | None = None,
           required: bool = False) -> Any:
    """A configuration field with its documentation (see the module docstring); `required` options have no
    default on the command line (their dataclass default is None, refused by the config's check)."""
    return field(default=default, metadata={"help": help, "result": result, "flags": flags, "metavar": metavar,
                                            "choices": choices, "default_text": default_text, "required": required})


def part(cls: type) -> Any:
    """A nested configuration part, default-constructed."""
    return field(default_factory=cls, metadata={"part": True})


def positive(value: int | None, name: str) -> None:
    if value is not None and value <= 0:
        raise OptionError(f"{{{name}}} must be a positive whole number, got {literal(value)}")


def need(value: Any, name: str) -> None:
    """Refuse a required option left unset."""
    if value is None:
        raise OptionError(f"{{{name}}} is required")



def fields_of(cls: type) -> Iterator[tuple[str, dataclasses.Field]]:
    """Every leaf option of a config class, parts flattened, in declaration order: (name, field)."""
    for f in dataclasses.fields(cls):
        if f.metadata.get("part"):
            yield from fields_of(f.default_factory)  # type: ignore[arg-type]
        else:
            yield f.name, f


def leaves(config: Any) -> Iterator[tuple[str, Any]]:
    """Every leaf option of a config instance with its value, parts flattened."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("part"):
            yield from leaves(value)
        else:
            yield f.name, value


def build(cls: type, values: dict[str, Any]) -> Any:
    """A config of class `cls` from flat option values (missing ones keep their defaults)."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("part"):
            kwargs[f.name] = build(f.default_factory, values)  # type: ignore[arg-type]
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def result_options(config: Any) -> dict[str, Any]:
    """The result-changing options of `config` with their values, in `RESULT_ORDER`. Under the project protocol,
    an option added after results folders existed (`presets.LATER_OPTIONS`) is left out while it has its value
    from before then, so those folders still resume; under any other protocol every option is there."""
    from .presets import LATER_OPTIONS

    present = dict(leaves(config))
    legacy = present.get("protocol", "project") == "project"
    return {name: present[name] for name in RESULT_ORDER
            if name in present and not (legacy and name in LATER_OPTIONS and present[name] == LATER_OPTIONS[name])}


def result_defaults(cls: type, protocol: str = "project") -> dict[str, Any]:
    """The default values of `cls`'s result-changing options under `protocol`, as a default run resolves them
    (scoring: trace)."""
    return result_options(cls(protocol=protocol))


def changed_result_options(config: Any) -> dict[str, Any]:
    """The result-changing options whose value differs from its protocol's default for `config`'s class: the
    protocol itself when not the project's, then the options set against it."""
    defaults = result_defaults(type(config), getattr(config, "protocol", "project"))
    options = result_options(config)
    return {name: value for name, value in options.items()
            if name == "protocol" or value != defaults.get(name)}
