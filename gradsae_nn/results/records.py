"""Crash-safe result files: append-only JSONL, atomic JSON writes, and a per-run configuration guard.

A crash or Ctrl-C can at worst leave a partial last line in a JSONL file; readers drop it and the
writer truncates it before appending, so finished records are never lost or duplicated.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from ..config.presets import LATER_OPTIONS
from ..errors import OptionError, UsageError, literal


def read_jsonl(path: Path) -> list[dict]:
    """All complete records of `path` (an empty list if it does not exist).

    A torn last line (no newline after it: a write interrupted mid-line) is ignored; it is cut off by the
    next `JsonlAppender`. A bad line anywhere else is damage no interruption makes: `UsageError` naming the
    line and the repair, since skipping it would recompute and re-append everything after it on every rerun.
    """
    if not path.exists():
        return []
    *lines, tail = path.read_bytes().split(b"\n")
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError(f"{path}: line {n} is damaged (not JSON) with {len(lines) - n} line(s) after it; "
                             f"delete that line (`sed -i '{n}d' {path}`) and rerun: only its example is "
                             f"recomputed") from None
    return records


def _truncate_torn_tail(path: Path) -> None:
    """Cut a partial last line (no trailing newline) left by an interrupted write."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    with open(path, "r+b") as fh:
        fh.truncate(data.rfind(b"\n") + 1)


class JsonlAppender:
    """Append records to a JSONL file, one fsync'd line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_torn_tail(path)
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, records: Iterable[dict]) -> None:
        for record in records:
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see either the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def check_run_config(out_dir: Path, config: dict, write: bool = True, option: str = "out") -> None:
    """Refuse to mix results of different configurations in one output folder.

    The first run writes `run_config.json` (unless `write` is False: a check before anything is written); a
    later run (a resume) must pass an identical config, options added since counting at their earlier value. `option` names the folder's option in the error.
    """
    path = out_dir / "run_config.json"
    if path.exists():
        previous = json.loads(path.read_text())
        # an option added after a folder was written is recorded only when it differs from its value before it
        # existed (`config.presets.LATER_OPTIONS`): absent on one side means that value
        later = {k: list(v) if isinstance(v, tuple) else v for k, v in LATER_OPTIONS.items()}
        changed = sorted(k for k in set(previous) | set(config)
                         if previous.get(k, later.get(k)) != config.get(k, later.get(k)))
        if changed:
            raise OptionError(f"{literal(str(out_dir))[1:-1]} holds results of a different configuration (differs in: "
                              f"{', '.join(changed)}); use another {{{option}}} or delete that folder")
        return
    if write:
        atomic_write_json(path, config)


_HELD: dict[Path, int] = {}  # folders this process holds, by resolved path → lock file descriptor


class FolderLock:
    """An exclusive `flock` on `folder/.lock`, so that one process at a time appends to a results folder.

    `acquire(wait=False)` refuses a folder another process holds with one line (`OptionError`, naming its pid);
    `acquire(wait=True)` waits for it (a shared cache). The kernel releases the lock when the process ends, however
    it ends, so a crash never leaves a folder locked. Within one process the lock is held once and shared: a
    notebook that reruns an interrupted run (whose lock the abandoned call still holds) takes it over.
    """

    def __init__(self, folder: Path, option: str = "out") -> None:
        self.folder, self.option = folder, option
        self._key = folder.expanduser().absolute()

    def acquire(self, wait: bool = False) -> "FolderLock":
        if self._key in _HELD:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OptionError(f"{literal(str(self.folder))[1:-1]} is in use by another run (pid {holder}); wait for "
                              f"it to finish or pass another {{{self.option}}}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _HELD[self._key] = fd
        return self

    def release(self) -> None:
        fd = _HELD.pop(self._key, None)
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> "FolderLock":
        return self.acquire(wait=True)

    def __exit__(self, *exc: Any) -> None:
        self.release()


def check_writable(folder: Path, option: str) -> None:
    """Refuse, before any work, a results folder that names a file or cannot be created or written."""
    folder = Path(folder).expanduser()
    shown = literal(str(folder))[1:-1]
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"{{{option}}} {shown} is a file, not a folder; pass a folder path")
    existing = next(p for p in [folder, *folder.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise OptionError(f"{{{option}}} {shown} lies under the file {existing}; pass a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(f"{{{option}}} {shown} cannot be written ({existing} is read-only); pass {{{option}}} a "
                          f"writable folder")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
