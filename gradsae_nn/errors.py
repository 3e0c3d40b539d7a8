"""User-facing errors.

A `UsageError` is bad input the user can fix: scripts print its message as one line and exit 2.
An `OptionError` is a `UsageError` about named options: its message names them in the words of whoever
called — parameter names (`n_correct`) from the library, flags (`--n-correct`) from a script.
A `RemoteFailure` is an NDIF request that failed (server unreachable, or an exception on the server):
one line and exit 3, plus the server's traceback when it was asked for (`-v`).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Callable


class UsageError(Exception):
    """Bad input: the message names the problem and the fix, on one line."""


def flag(name: str) -> str:
    """The command-line flag of a configuration field: `n_correct` → `--n-correct`."""
    return "--" + name.replace("_", "-")


def literal(value: object) -> str:
    """`repr(value)` with braces doubled, for an `OptionError` template."""
    return repr(value).replace("{", "{{").replace("}", "}}")


class _Names(dict):
    def __init__(self, name_of: Callable[[str], str]) -> None:
        super().__init__()
        self.name_of = name_of

    def __missing__(self, key: str) -> str:
        return self.name_of(key)


class OptionError(UsageError):
    """Bad input about options. `template` writes each option as `{field_name}` (other braces doubled):
    `str()` shows parameter names (the library's words), `for_cli()` shows flags (a script's)."""

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(self.render(lambda name: name))

    def render(self, name_of: Callable[[str], str]) -> str:
        return self.template.format_map(_Names(name_of))

    def for_cli(self) -> str:
        return self.render(flag)


class RemoteFailure(Exception):
    """A remote request failed: `str()` is one line; `detail` is the server's traceback, if any.

    transient: worth retrying (connection reset, timeout, HTTP 5xx); show_detail: print `detail` too.
    """

    def __init__(self, message: str, detail: str | None = None, transient: bool = False,
                 show_detail: bool = False) -> None:
        super().__init__(message)
        self.detail, self.transient, self.show_detail = detail, transient, show_detail
