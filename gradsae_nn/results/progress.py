"""One look for progress bars across every script: description, bar, count, rate, elapsed and ETA.

`waiting(label)` adds a status line for a remote job to the progress display that is open (rich allows one
live display at a time), or opens a transient one of its own.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

_OPEN: list[Progress] = []  # progress displays currently shown, innermost last


class RateColumn(ProgressColumn):
    """Items per second (examples, tokens, ...), from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f}/s" if task.speed else "-/s", style="progress.data.speed")


class TrackedProgress(Progress):
    """A rich `Progress` that `waiting` can find while it is shown."""

    def __enter__(self) -> "TrackedProgress":
        super().__enter__()
        _OPEN.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _OPEN.remove(self)
        super().__exit__(*exc)


def make_progress() -> Progress:
    return TrackedProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                           TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())


@contextmanager
def waiting(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner line `label` while something remote runs; yields `update(text)` to change its text."""
    if _OPEN:
        progress, own = _OPEN[-1], None
    else:
        own = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True)
        progress = own.__enter__()
    task = progress.add_task(label, total=None)
    try:
        yield lambda text: progress.update(task, description=text)
    finally:
        progress.remove_task(task)
        if own is not None:
            own.__exit__(None, None, None)
