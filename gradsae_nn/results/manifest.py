"""`manifest.json`: what produced a results folder (versions, model and SAE with hashes, options, git commit, times).

Written when a run starts (`start()`: after every check passed, so a refused run writes nothing; it also takes
the folder's lock and writes `run_config.json`) with `ended` null, and again when it ends, atomically. Only the options the script
parsed are recorded, and no environment variables: the NDIF API key, read from the environment, never
appears here.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .records import FolderLock, atomic_write_json, check_run_config, file_sha256

PACKAGES = ("gradsae_nn", "torch", "nnsight", "transformers", "sae-lens", "datasets", "numpy")
SECRET_NAMES = ("api_key", "ndif_api_key", "token")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> dict[str, Any]:
    """HEAD of the checkout this package runs from, and whether it had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10)
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def model_identity(name: str) -> dict[str, Any]:
    """Registry name and the pinned GGUF sha256 for an embedded model; the id/path as given otherwise."""
    from ..models.embedded import EMBEDDED_MODELS

    embedded = EMBEDDED_MODELS.get(name)
    return {"name": name, "gguf_sha256": getattr(embedded, "gguf_sha256", None)}


def sae_identity(spec: str) -> dict[str, Any]:
    """The SAE spec and, for a local or shipped SAE, the sha256 of its weights file."""
    from ..core.sae import shipped_sae_names, shipped_sae_root

    folder = shipped_sae_root() / spec if spec in shipped_sae_names() else Path(spec).expanduser()
    weights = folder / "sae_weights.safetensors"
    return {"spec": spec, "weights_sha256": file_sha256(weights) if weights.is_file() else None}


def clean_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON values, minus anything named like a secret."""
    return {k: (v if isinstance(v, (str, int, float, bool, type(None), list)) else str(v))
            for k, v in options.items() if k.lower() not in SECRET_NAMES}


class Manifest:
    """`start()` → lock, `run_config.json` and `manifest.json` with `ended: null`; `finish()` → the same file with
    the end time and results. Nothing is written before `start()`."""

    def __init__(self, out_dir: Path, script: str, options: dict[str, Any], model: str, sae: str | None,
                 extra: dict[str, Any] | None = None, run_config: dict[str, Any] | None = None) -> None:
        self.path = out_dir / "manifest.json"
        self.run_config = run_config
        self.lock = FolderLock(out_dir)
        self.data: dict[str, Any] = {
            "script": script, "argv": [a for a in sys.argv[1:]], "options": clean_options(options),
            "model": model_identity(model), "sae": sae_identity(sae) if sae else None,
            "packages": package_versions(), "python": platform.python_version(), "platform": platform.platform(),
            "git": git_commit(), "started": None, "ended": None, **(extra or {}),
        }

    def start(self) -> "Manifest":
        """Take the folder (refusing one another process is writing), record its configuration, and begin."""
        self.lock.acquire(wait=False)
        if self.run_config is not None:
            check_run_config(self.path.parent, self.run_config)
        self.data["started"] = now()
        atomic_write_json(self.path, self.data)
        return self

    def finish(self, **results: Any) -> None:
        if self.data["started"] is None:
            self.start()
        self.data.update(results)
        self.data["ended"] = now()
        atomic_write_json(self.path, self.data)
        self.lock.release()
