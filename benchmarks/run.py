"""The benchmark suite of issue 7: ratios measured side by side in one process, written to docs/benchmarks.md.

    python benchmarks/run.py                           # SmolLM2-135M-Instruct, its default SAE, CPU/GPU auto
    python benchmarks/run.py --device cpu --repeats 7 --remote-host http://127.0.0.1:8289

Rows (module): 1–2 core overheads (core.py), 3 the authors' generation loop (authors.py), 4 exact ablation
(ablation.py), 5 batching (batching.py), 6 peak memory (memory.py), 7 remote NDIF (remote.py), 8 the default
perturbation run (perturb_run.py), 9 ranking methods (methods.py), 10 bf16 selections (dtypes.py), 11 bf16
activation collection (collection.py). Timing: benchmarks/timing.py (warm-up, interleaved repeats, median, IQR).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from benchmarks.options import ROW_GROUPS, build_parser, setup  # noqa: E402
from benchmarks.report import Row, machine, render  # noqa: E402

# (number, what, goal) of every row a group produces, for rows that are skipped or fail
PLACEHOLDERS = {
    "1": [("1", "GradSAE scoring vs plain PyTorch fwd + bwd", "≤ 1.10×")],
    "2": [("2", "edited generate vs unedited HF generate", "≤ 1.15×")],
    "3": [("3", "edited generate vs the authors' loop", "≥ 5× faster"),
          ("3b", "newest-token edit (current) vs the authors' loop", "≥ 5× faster")],
    "4": [("4a", "GradSAE scoring vs exact ablation", "≥ 20× faster"), ("4b", "Spearman", "≥ 0.6"),
          ("4c", "precision@10", "report")],
    "5": [("5a", "scoring batch 8 vs 1", "≥ 2.5×"), ("5b", "generate batch 8 vs 1", "≥ 2.5×")],
    "6": [("6", "peak memory, scoring vs forward", "report; ≤ 2×"),
          ("6b", "peak memory, scoring with --checkpoint vs forward", "≤ 2×")],
    "7": [("7a", "remote scoring vs local", "report"), ("7b", "remote edited generation vs local", "report"),
          ("7c", "request bytes, sliced vs full SAE", "report"), ("7d", "request bytes, Gemma Scope size", "report")],
    "8": [("8", "default perturbation run", "≤ 30 min on 2 cores")],
    "9": [("9a", "integrated gradients vs GradSAE scoring", "report"),
          ("9b", "exact ablation of the candidates vs GradSAE scoring", "report")],
    "10": [("10", "bf16 vs fp32: selections and edited generations", "report")],
    "11": [("11", "SAE-training activations, bf16 model vs fp32", "report")],
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_group(group: str, make: Callable[[], list[Row]]) -> list[Row]:
    start = time.perf_counter()
    log(f"row {group} ...")
    try:
        rows = make()
    except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others
        traceback.print_exc()
        reason = f"failed: {type(exc).__name__}: {exc}"
        rows = [Row.not_measured(n, w, "—", g, reason) for n, w, g in PLACEHOLDERS[group]]
    log(f"row {group} done in {time.perf_counter() - start:.0f} s: "
        + "; ".join(f"{r.number} {r.a} vs {r.b} → {r.ratio} ({r.met})" for r in rows))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__).parse_args(argv)
    groups = [g.strip() for g in args.rows.split(",") if g.strip()]
    unknown = set(groups) - set(ROW_GROUPS)
    if unknown or args.repeats < 1 or args.batch < 1 or args.ablation_examples < 1:
        raise SystemExit(f"bad options: rows {sorted(unknown)}, --repeats/--batch/--ablation-examples must be ≥ 1")
    pool = None if args.ablation_latents == "all" else int(args.ablation_latents)
    started = time.perf_counter()
    log(f"loading {args.model} ...")
    ctx = setup(args, n_examples=max(args.batch, args.ablation_examples))
    info_start = machine(ctx.device)

    from benchmarks import (ablation, authors, batching, collection, core, dtypes, memory, methods, perturb_run,
                            remote)

    makers: dict[str, Callable[[], list[Row]]] = {
        "1": lambda: [core.row_scoring(ctx)],
        "2": lambda: [core.row_generate(ctx)],
        "3": lambda: [authors.row_authors(ctx), authors.row_current(ctx)],
        "4": lambda: ablation.rows_ablation(ctx, args.ablation_examples, pool, args.ablation_batch),
        "5": lambda: batching.rows_batching(ctx, args.batch),
        "6": lambda: memory.row_memory(ctx, args.model, args.memory_repeats),
        "7": lambda: remote.rows_remote(ctx, args.remote_host),
        "8": lambda: [perturb_run.row_default_run(args.model, str(ctx.device)) if args.with_default_run
                      else perturb_run.row_from_manifest(Path(args.results_dir), args.model, ctx.layer)],
        "9": lambda: methods.rows_methods(ctx),
        "10": lambda: dtypes.rows_dtypes(ctx, args.model),
        "11": lambda: collection.rows_collection(ctx, args.model),
    }
    rows: list[Row] = []
    for group in ROW_GROUPS:
        if group in groups:
            rows += run_group(group, makers[group])
        else:
            rows += [Row.not_measured(n, w, "—", g, "skipped (--rows)") for n, w, g in PLACEHOLDERS[group]]

    seconds = time.perf_counter() - started
    if hasattr(os, "getloadavg"):
        info_start["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    info_start["suite wall time"] = f"{seconds / 60:.1f} min"
    ex = ctx.inputs[0]
    config = {
        "model": f"{args.model} ({ctx.model.source})",
        "SAE": f"{ctx.sae_spec}, layer {ctx.layer}, {ctx.sae.cfg.d_sae} latents ({ctx.sae.cfg.architecture()})",
        "examples": f"the first {len(ctx.inputs)} SQuAD v1.1 dev questions, default prompt template, the model's own "
                    f"greedy answer as target (answer-logprob, lossless splice); example 0: {len(ex.prompt_ids)} "
                    f"prompt + {len(ex.answer_ids)} answer tokens ({ctx.questions[0]!r})",
        "repeats": f"{args.repeats} timed repeats per function after a warm-up (median reported)",
        "options": " ".join(sys.argv[1:] if argv is None else argv) or "(defaults)",
    }
    command = "python benchmarks/run.py" + (" " + config["options"] if config["options"] != "(defaults)" else "")
    text = render(rows, info_start, config, args.note, command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(text)
    log(f"wrote {out} in {seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
