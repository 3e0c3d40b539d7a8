"""`tests/kernel_levels.py` reruns the numeric tests under other CPU kernel levels: it must pick only levels the CPU
can run. torch accepts any `ATEN_CPU_CAPABILITY` and reports it back, so an AVX2-only CPU asked for avx512 says
`avx512` and then dies of an illegal instruction (seen on an AMD EPYC without AVX-512)."""

import subprocess
import sys

import torch

from kernel_levels import LEVELS, capability, supported_levels


def test_supported_levels_stop_at_the_native_one():
    native = capability(None)
    levels = supported_levels()
    order = list(LEVELS)
    assert levels == order[:len(levels)], levels                    # a prefix: default, then wider ones
    if native in order:
        assert levels[-1] == native, (levels, native)               # nothing wider than what the CPU offers


def test_every_supported_level_runs_a_vectorised_kernel():
    n = 4096
    probe = f"import torch; x = torch.randn({n}).to(torch.bfloat16); print(float(torch.softmax(x.float(), 0).sum()))"
    for level in supported_levels():
        env = {"ATEN_CPU_CAPABILITY": level, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
        assert out.returncode == 0, f"level {level}: exit {out.returncode}\n{out.stderr[-500:]}"
        assert abs(float(out.stdout) - 1.0) <= n * torch.finfo(torch.float32).eps   # a float32 sum of n terms
