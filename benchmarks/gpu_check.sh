#!/usr/bin/env bash
# The GPU check, one script for a lent GPU machine (about 6 min on one GPU after the install):
#   1. the core on cuda against plain PyTorch on cuda (tests/test_cuda.py: scoring in-trace, x-grad and with
#      --checkpoint; edited generation; integrated gradients' completeness; exact ablation);
#   2. benchmark rows 1–6 on cuda, written to docs/benchmarks-gpu.md (ratios, side by side, as on the CPU).
# Usage, from the repository root, with the project installed as the README says (block 1):
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # OUT_DIR (default results/gpu_check) gets the logs
# Exit status: non-zero when a check fails, or when no GPU is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu_check}"
mkdir -p "$out"
py=python
[ -x .venv/bin/python ] && py=.venv/bin/python

"$py" - <<'EOF' | tee "$out/device.txt"
import torch
assert torch.cuda.is_available(), "no GPU visible to torch"
print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
EOF

started=$(date +%s)
timeout 300 "$py" -m pytest -q -m cuda tests/test_cuda.py 2>&1 | tee "$out/test_cuda.log"
echo "core on cuda: $(( $(date +%s) - started )) s" | tee -a "$out/device.txt"

started=$(date +%s)
timeout 300 "$py" benchmarks/run.py --device cuda --rows 1,2,3,4,5,6 --repeats 5 \
  --note "GPU check (benchmarks/gpu_check.sh), rows 1–6" --out docs/benchmarks-gpu.md 2>&1 | tee "$out/benchmarks.log"
echo "benchmark rows 1–6 on cuda: $(( $(date +%s) - started )) s" | tee -a "$out/device.txt"
cp docs/benchmarks-gpu.md "$out/"
