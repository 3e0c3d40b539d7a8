"""Where every run's files live: one naming rule for every folder the scripts choose themselves.

`results/<kind>/<base>[-<option>_<value>...]`: the base names the model (and layer), and every non-default
option that changes the folder's content follows in `RESULT_ORDER`, so two configurations never share (or
overwrite) a folder. Experiment folders, layer-sweep folders and the answer cache all use `folder`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

RESULTS_ROOT = Path("results")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.%-]+")


def safe(text: str) -> str:
    """`text` usable as one path component (runs of other characters become `_`)."""
    return _UNSAFE.sub("_", text.strip("/"))


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def folder(kind: str, base: str, changed: dict[str, Any], root: Path | str = RESULTS_ROOT) -> Path:
    """`root/kind/base[-name_value...]` for the options in `changed` (in their order)."""
    suffix = "".join(f"-{name}_{safe(_text(value))}" for name, value in changed.items())
    return Path(root) / kind / f"{safe(base)}{suffix}"
