"""Run pytest again under every other CPU kernel level this machine supports.

    python tests/kernel_levels.py [--all] [PYTEST ARGS...]      # e.g. -q tests/test_core.py

PyTorch picks its CPU kernels (`ATEN_CPU_CAPABILITY`: default = no SIMD, avx2, avx512 on x86) and MKL its
instruction set (`MKL_ENABLE_INSTRUCTIONS`) from the best the CPU offers, and each level rounds differently.
A tolerance tuned to one level fails on a machine that runs another, so the numeric tests run once per
level here: the suite's own run covers the native level, this script every other supported one (`--all`:
the native one too). A level counts as supported when it is at most the native one and torch, asked for it,
reports running it. Exits non-zero if any level fails; prints one summary line per level.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from functools import cache

# ATen level → the MKL instruction set of the same width
LEVELS = {"default": "SSE4_2", "avx2": "AVX2", "avx512": "AVX512"}
_PROBE = "import torch; print(torch.backends.cpu.get_cpu_capability())"


@cache
def capability(level: str | None) -> str:
    """The kernel level torch runs with `ATEN_CPU_CAPABILITY=level` (None: unset, the native one), lowercased."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if level is not None:
        env["ATEN_CPU_CAPABILITY"] = level
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().lower()


def supported_levels() -> list[str]:
    """The levels up to the native one (the best the CPU offers, as torch detects it from the CPU itself) that torch
    reports running when asked. Asking alone is not enough: on an AVX2-only CPU, torch 2.13 reports `avx512` for
    `ATEN_CPU_CAPABILITY=avx512` and then dies of an illegal instruction in its first AVX-512 kernel."""
    order = list(LEVELS)
    native = capability(None)
    ceiling = order.index(native) if native in order else 0
    return [level for level in order[:ceiling + 1] if capability(level) == level]


def main(argv: list[str]) -> int:
    run_all = "--all" in argv
    pytest_args = [a for a in argv if a != "--all"]
    native = capability(None)
    levels = [level for level in supported_levels() if run_all or level != native]
    print(f"kernel levels: native {native}; supported {', '.join(supported_levels())}; running {', '.join(levels)}",
          flush=True)
    results = {}
    for level in levels:
        env = {**os.environ, "ATEN_CPU_CAPABILITY": level, "MKL_ENABLE_INSTRUCTIONS": LEVELS[level]}
        print(f"== ATEN_CPU_CAPABILITY={level} MKL_ENABLE_INSTRUCTIONS={LEVELS[level]} pytest {' '.join(pytest_args)}",
              flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], env=env).returncode
        results[level] = (code, time.monotonic() - started)
    for level, (code, seconds) in results.items():
        print(f"kernel level {level}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s")
    return max((code for code, _ in results.values()), default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
