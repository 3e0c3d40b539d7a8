"""Shared by the fault-injection suites (`test_faults*.py`): the scripts run as subprocesses on tiny inputs (a
random 2-layer Llama with SmolLM2's tokenizer, a random SAE) in situations a user or a second process creates;
each case asserts the exit code, one line naming the problem and a fix that works, no traceback, and no
partial or refused-run file left behind. Every run has `NDIF_API_KEY` set to `SECRET`, which must never reach
a file or the console."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


SECRET = "sk-test-0f9e8d7c6b5a"   # NDIF_API_KEY in every run: it must never reach a file or the console


def script(name, *args, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NDIF_API_KEY": SECRET}
    return subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def small(tiny_dirs, *extra):
    model_dir, sae_dir = tiny_dirs
    return ["--model", model_dir, "--sae", sae_dir, "--limit", "12", "--n-correct", "2", "--correct-f1", "0",
            "--max-new-tokens", "3", "--k", "1", "--device", "cpu", *extra]


def one_line_error(proc, code, *needles):
    """Exit `code`, stderr one line holding every needle, no traceback."""
    assert proc.returncode == code, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_no_secret(proc, folder):
    """The API key is in no output and no file the run left."""
    assert SECRET not in proc.stdout + proc.stderr
    for path in folder.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
