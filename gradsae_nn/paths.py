"""Where gradsae_nn keeps converted models and other caches."""

import os
from pathlib import Path


def cache_home() -> Path:
    """`$GRADSAE_HOME`, default `~/.cache/gradsae_nn`; created on first use."""
    root = Path(os.environ.get("GRADSAE_HOME") or Path.home() / ".cache" / "gradsae_nn").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
