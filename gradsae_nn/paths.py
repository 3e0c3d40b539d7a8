"""Where gradsae_nn keeps converted models and other caches."""

import os
from pathlib import Path

from .errors import UsageError


def cache_home() -> Path:
    """`$GRADSAE_HOME`, default `~/.cache/gradsae_nn`; created on first use.

    Raises `UsageError` (one line, naming the variable) when it is a file or cannot be created."""
    set_by_user = bool(os.environ.get("GRADSAE_HOME"))
    root = Path(os.environ.get("GRADSAE_HOME") or Path.home() / ".cache" / "gradsae_nn").expanduser()
    name = f"GRADSAE_HOME={root}" if set_by_user else f"the cache folder {root}"
    if root.exists() and not root.is_dir():
        raise UsageError(f"{name} is a file, not a folder; point GRADSAE_HOME at a folder (or move the file)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {name} ({exc.strerror}); point GRADSAE_HOME at a writable folder") from None
    return root
