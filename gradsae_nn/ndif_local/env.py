"""The Python 3.12 environment the local NDIF server runs in (`ndif_local`), built once under the cache.

NDIF 0.1.2 is published for Python 3.12 only, while the project (and its clients) may run 3.11: the
server gets its own venv at `$GRADSAE_HOME/ndif/venv` (see `root`), with the exact pins below, and never imports
gradsae_nn (see `cpu_actor`).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import UsageError
from ..paths import cache_home

SERVER_REQUIREMENTS = (
    "ndif[api,ray]==0.1.2", "nnsight==0.8.1",
    "transformers==5.22.2",  # 5.23.0 breaks the server's model construction
    "moto[server]==5.2.5",   # the S3 store (NDIF's RustFS is not on PyPI)
    # anyio 4.15+ imports its asyncio backend lazily, after nnsight has mounted `.save` on every object,
    # and its TypedAttributeSet then refuses to build: every request over 1 MB (spooled to disk through
    # anyio) fails with "There was an error parsing the body". 4.14 imports it up front.
    "anyio==4.14.0",
    # the client's torch (pyproject.toml): the same kernels on the same CPU, so remote results equal local ones
    # bit for bit (unpinned, pip took the newest release its cap allowed, 2.14.1)
    "torch==2.13.0",
)
SERVER_PYTHON = "3.12"


def root() -> Path:
    """`$GRADSAE_NDIF_HOME`, default `$GRADSAE_HOME/ndif`: set it to keep the 6 GB server venv across
    runs that use a fresh `GRADSAE_HOME` (CI)."""
    override = os.environ.get("GRADSAE_NDIF_HOME")
    return Path(override).expanduser() if override else cache_home() / "ndif"


def _find_python() -> str:
    """A Python 3.12 interpreter: $GRADSAE_NDIF_PYTHON, pyenv's 3.12.x, or python3.12 on PATH."""
    candidates = [os.environ.get("GRADSAE_NDIF_PYTHON", "")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += [str(p) for p in sorted(pyenv_root.glob(f"versions/{SERVER_PYTHON}.*/bin/python{SERVER_PYTHON}"),
                                          reverse=True)]
    candidates.append(shutil.which(f"python{SERVER_PYTHON}") or "")
    for exe in filter(None, candidates):
        probe = subprocess.run([exe, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == SERVER_PYTHON:
            return exe
    raise UsageError(f"NDIF 0.1.2 needs Python {SERVER_PYTHON} and none was found; install it "
                     f"(e.g. `pyenv install {SERVER_PYTHON}`) or set GRADSAE_NDIF_PYTHON=/path/to/python{SERVER_PYTHON}")


@contextmanager
def lock(name: str) -> Iterator[None]:
    root().mkdir(parents=True, exist_ok=True)
    with open(root() / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def ensure_server_env() -> Path:
    """The server venv, built on first use (pip downloads ~6 GB: NDIF pulls a CUDA torch; ~3 min).

    A changed requirement list re-runs pip in the existing venv (only what changed is installed).
    """
    venv = root() / "venv"
    marker = venv / "gradsae_ndif_env.json"
    wanted = {"requirements": list(SERVER_REQUIREMENTS)}
    with lock("venv"):
        if marker.is_file() and json.loads(marker.read_text()) == wanted:
            return venv
        marker.unlink(missing_ok=True)
        log = root() / "venv-build.log"
        print(f"ndif_local: installing the NDIF server environment in {venv} (first time ~6 GB, a few minutes; "
              f"log: {log})", file=sys.stderr)
        with open(log, "w") as out:
            ok = (venv / "bin" / "python").is_file() or subprocess.run(
                [_find_python(), "-m", "venv", str(venv)], stdout=out, stderr=subprocess.STDOUT).returncode == 0
            ok = ok and subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", *SERVER_REQUIREMENTS],
                                       stdout=out, stderr=subprocess.STDOUT).returncode == 0
        if not ok:
            raise UsageError(f"installing the NDIF server environment failed (pip needs PyPI); see {log}")
        marker.write_text(json.dumps(wanted))
    return venv
