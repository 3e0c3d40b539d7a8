"""The command line of every script, generated from its configuration class (`config/`), and one-line errors.

`parse(PerturbConfig, argv, doc)` builds the parser from the config's fields (flag, type, choices, default
and help each come from one field), parses `argv` and returns the config; a bad value is one line on
stderr naming the flag, exit code 2 (`run`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import types
import typing
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Callable, Literal, get_args, get_origin

from .config import build, fields_of
from .errors import OptionError, RemoteFailure, UsageError, flag


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (not usage + error) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {value}")
    return value


def _unoptional(annotation: Any) -> Any:
    """`X | None` → X."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One command-line option per leaf field of the config class `cls`, each with its default in its help."""
    hints = {}
    for klass in reversed(cls.__mro__):
        hints.update(typing.get_type_hints(klass) if hasattr(klass, "__dataclass_fields__") else {})
    hints.update(_part_hints(cls))
    for name, f in fields_of(cls):
        meta = f.metadata
        kind = _unoptional(hints[name])
        shown = meta.get("default_text") or (" ".join(map(str, f.default)) if isinstance(f.default, tuple)
                                             else f.default)
        text = meta["help"].replace("%", "%%")  # argparse expands %-formats in help
        kwargs: dict[str, Any] = {"dest": name, "default": f.default,
                                  "help": f"{text} (default: {str(shown).replace('%', '%%')})"}
        if kind is bool and f.default is None:  # governed by --protocol: on, off, or the protocol's choice
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif kind is bool:
            kwargs.update(action="store_true", help=f"{text} (default: off)")
        elif get_origin(kind) is tuple and get_origin(get_args(kind)[0]) is Literal:
            kwargs.update(nargs="+", choices=get_args(get_args(kind)[0]))
        elif get_origin(kind) is tuple:
            kwargs.update(nargs="+", type=get_args(kind)[0])
        elif get_origin(kind) is Literal:
            kwargs.update(choices=get_args(kind))
        else:
            kwargs.update(type=kind)
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("required"):
            kwargs.update(required=True, help=text)
        parser.add_argument(*(meta.get("flags") or (flag(name),)), **kwargs)


def _part_hints(cls: type) -> dict[str, Any]:
    """Type hints of the leaf fields inside nested parts."""
    import dataclasses

    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("part"):
            part_cls = f.default_factory  # type: ignore[union-attr]
            out.update(typing.get_type_hints(part_cls))
            out.update(_part_hints(part_cls))
    return out


def parser_for(cls: type, doc: str) -> ArgumentParser:
    parser = ArgumentParser(description=doc.split("\n\n")[0])
    add_options(parser, cls)
    return parser


def config_from(cls: type, namespace: argparse.Namespace) -> Any:
    """The config of class `cls` from parsed options (lists become tuples)."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(namespace).items()}
    return build(cls, values)


def parse(cls: type, argv: list[str] | None, doc: str) -> Any:
    """Parse `argv` into a config of class `cls`; bad values raise `OptionError` (printed with flags by `run`)."""
    return config_from(cls, parser_for(cls, doc).parse_args(argv))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the script is (as Ctrl-C raises `KeyboardInterrupt`), so that the same cleanup runs:
    `finally` blocks, released locks, and the checkpoint an interrupted activation collection writes."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def run(main: Callable[[], int | None]) -> None:
    """Run a script's main: a `UsageError` becomes one line on stderr and exit 2 (an `OptionError` naming
    flags), a `RemoteFailure` one line (plus the server's traceback with -v) and exit 3; Ctrl-C exits 130 and
    SIGTERM 143, each after the script's own cleanup (finished results are already on disk)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main()
    except OptionError as exc:
        print(f"error: {exc.for_cli()}", file=sys.stderr)
        sys.exit(2)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RemoteFailure as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.show_detail and exc.detail:
            print(f"server traceback:\n{exc.detail}", file=sys.stderr)
        sys.exit(3)
    except KeyboardInterrupt as exc:
        print("interrupted: every finished result is saved; rerun the same command to resume", file=sys.stderr)
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    sys.exit(code or 0)


# Every script in experiments/: its config class and the library function it calls, as "module:name".
SCRIPTS: dict[str, tuple[str, str]] = {
    "answer": ("gradsae_nn.config:AnswerRunConfig", "gradsae_nn.runs.answers:answer"),
    "perturb": ("gradsae_nn.config:PerturbConfig", "gradsae_nn.runs.perturbation:perturb"),
    "steer": ("gradsae_nn.config:SteerConfig", "gradsae_nn.runs.steering:steer"),
    "steer_sweep": ("gradsae_nn.config:SteerSweepConfig", "gradsae_nn.runs.dose:steer_sweep"),
    "faithfulness": ("gradsae_nn.config:FaithfulnessConfig", "gradsae_nn.runs.faithfulness:faithfulness"),
    "stats": ("gradsae_nn.config:StatsConfig", "gradsae_nn.runs.overlap:stats"),
    "layer_sweep": ("gradsae_nn.config:SweepConfig", "gradsae_nn.runs.sweep:layer_sweep"),
    "protocol_ablation": ("gradsae_nn.config:ProtocolAblationConfig", "gradsae_nn.runs.ablation:protocol_ablation"),
    "write_questions": ("gradsae_nn.training.config:WriteQuestionsConfig", "gradsae_nn.training.run:questions_main"),
    "train_sae": ("gradsae_nn.training.config:TrainSAEConfig", "gradsae_nn.training.run:train_main"),
    "sae_quality": ("gradsae_nn.training.config:SAEQualityConfig", "gradsae_nn.training.run:quality_main"),
    "sae_contexts": ("gradsae_nn.training.config:SAEContextsConfig", "gradsae_nn.training.contexts:contexts_main"),
}


def _resolve(target: str) -> Any:
    module, name = target.split(":")
    return getattr(import_module(module), name)


@dataclass(frozen=True)
class Script:
    """A script's `main`: argv → its config (`parse`) → its library function. `run()` is the process entry."""

    name: str
    doc: str

    @property
    def config_class(self) -> type:
        return _resolve(SCRIPTS[self.name][0])

    def parser(self) -> ArgumentParser:
        return parser_for(self.config_class, self.doc)

    def __call__(self, argv: list[str] | None = None) -> int:
        _resolve(SCRIPTS[self.name][1])(parse(self.config_class, argv, self.doc))
        return 0

    def run(self) -> None:
        run(lambda: self())


def script(name: str, doc: str) -> Script:
    """The `main` of experiments/<name>.py."""
    if name not in SCRIPTS:
        raise ValueError(f"no script {name!r} in cli.SCRIPTS")
    return Script(name, doc)
