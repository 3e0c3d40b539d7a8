"""docs/scale.md's tables from benchmarks/scale.py's JSON lines: the measurements, and their projection to the full
depth on this CPU and, from FLOPs and bytes, to one A100 / H100.

    python benchmarks/scale_report.py /work/scale/gemma.jsonl /work/scale/llama.jsonl

Projection on the CPU (two measured depths n1 < n2, the SAE at layer L, so n − L − 1 layers above it):
- per-layer forward cost `f` = (forward(n2) − forward(n1)) / (n2 − n1);
- per-layer cost of a layer *above* the SAE's in scoring `s` (forward + backward to x) = the same difference of
  scoring times;
- full depth N, SAE at layer L*: scoring = scoring(n1) + (L* − L) · f + (N − L* − 1) · s; forward =
  forward(n1) + (N − n1) · f; an edited generation (prompt pass + 8 one-token steps) = its time at n2 +
  (N − n2) · f (the edit's own cost depends on K, which only the deeper build has calibrated: see standins.py).
fp32 only: in bf16 this CPU's scoring has a fixed cost of ~20 s that swamps the per-layer differences.
Projection to a GPU (nothing measured there): time ≈ max(FLOPs / (0.4 · peak), weight bytes read / bandwidth),
with FLOPs = 2 · (non-embedding parameters) per token for the forward and again for each layer above L* in the
backward (gradients to the inputs only; the model is frozen), and the weights read once per pass.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# dense bf16 / fp32 (no TF32) peak FLOP/s and HBM bandwidth, from the vendors' data sheets (SXM parts)
GPUS = {"A100 80GB SXM": (312e12, 19.5e12, 2.0e12), "H100 SXM": (989e12, 67e12, 3.35e12)}
FULL = {"google/gemma-2-9b-it": {"n_layers": 42, "sae_layer": 9, "layer_params": 198.2e6, "embed": 256000 * 3584,
                                 "tied": True},
        "meta-llama/Llama-3.1-8B": {"n_layers": 32, "sae_layer": 15, "layer_params": 218.1e6, "embed": 128256 * 4096,
                                    "tied": False}}
OPS = ("forward", "scoring_trace", "scoring_trace_checkpoint", "scoring_xgrad", "xgrad_client_part", "edit_sliced",
       "edit_full")


def load(paths: list[str]) -> list[dict]:
    return [json.loads(line) for p in paths for line in Path(p).read_text().splitlines() if line.strip()]


def measured_table(rows: list[dict]) -> str:
    head = ("| model | dtype | layers | tokens | load s (RSS MiB) | " + " | ".join(OPS) + " | request bytes: scoring / "
            "sliced edit / full edit |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        b, rb = r["built"], r["request_bytes"]
        cells = [f"{r[op]['s']:.1f} s / {r[op]['peak_mib']:.0f} MiB" for op in OPS]
        lines.append(f"| {b['model']} + {b['sae'].split(':')[1]} ({b['d_sae']:,}) | {r['dtype']} | {b['n_layers']} | "
                     f"{r['prompt_tokens']} + {r['answer_tokens']} | {r['load']['s']:.0f} ({r['load']['rss_mib']:,}) | "
                     + " | ".join(cells) + f" | {rb['scoring']:,} / {rb['edit_sliced']:,} / {rb['edit_full_computed']:,} |")
    return "\n".join(lines)


def cpu_projection(rows: list[dict]) -> str:
    lines = ["| model | dtype | per layer: forward / scoring (above L) | full depth: forward | scoring | edited "
             "generation (sliced, 8 tokens) |", "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["built"]["model"], r["dtype"]), []).append(r)
    for (model, dtype), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["built"]["n_layers"])
        if len(rs) < 2 or model not in FULL or dtype != "float32":  # bf16 on a CPU: fixed costs swamp the slope
            continue
        a, b = rs[0], rs[-1]
        dn = b["built"]["n_layers"] - a["built"]["n_layers"]
        f = (b["forward"]["s"] - a["forward"]["s"]) / dn
        s = (b["scoring_trace"]["s"] - a["scoring_trace"]["s"]) / dn
        full = FULL[model]
        n, lstar, l0, n1 = full["n_layers"], full["sae_layer"], a["built"]["layer"], a["built"]["n_layers"]
        scoring = a["scoring_trace"]["s"] + (lstar - l0) * f + (n - lstar - 1) * s
        lines.append(f"| {model} | {dtype} | {f:.1f} s / {s:.1f} s | {a['forward']['s'] + (n - n1) * f:.0f} s | "
                     f"{scoring:.0f} s | {b['edit_sliced']['s'] + (n - b['built']['n_layers']) * f:.0f} s |")
    return "\n".join(lines)


def gpu_projection(tokens: int = 400) -> str:
    lines = ["| model | GPU | weights bf16 / fp32 | scoring, bf16 | scoring, fp32 | one generation step (21 rows), "
             "bf16 |", "|---|---|---|---|---|---|"]
    for model, full in FULL.items():
        n, lstar = full["n_layers"], full["sae_layer"]
        body = n * full["layer_params"]
        weights = body + full["embed"] * (1 if full["tied"] else 2)
        above = (n - lstar - 1) / n
        flops = 2 * body * tokens * (1 + above)                     # forward + backward to x above L*
        read = lambda bytes_per: (body * (1 + above) + full["embed"]) * bytes_per  # noqa: E731
        for gpu, (bf16, fp32, bw) in GPUS.items():
            t_bf16 = max(flops / (0.4 * bf16), read(2) / bw)
            t_fp32 = max(flops / (0.4 * fp32), read(4) / bw)
            step = max(2 * weights * 21 / (0.4 * bf16), weights * 2 / bw)
            lines.append(f"| {model} | {gpu} | {weights * 2 / 2**30:.1f} / {weights * 4 / 2**30:.1f} GiB | "
                         f"{t_bf16 * 1e3:.0f} ms | {t_fp32 * 1e3:.0f} ms | {step * 1e3:.1f} ms |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    rows = load(argv)
    print("### Measured\n\n" + measured_table(rows) + "\n\n### Projected to the full depth, this CPU\n\n"
          + cpu_projection(rows) + "\n\n### Projected to one GPU (400-token prompt)\n\n" + gpu_projection())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
