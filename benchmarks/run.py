"""The benchmark suite of issue 7: ratios measured side by side in one process, written to docs/benchmarks.md.

    python benchmarks/run.py                           # SmolLM2-135M-Instruct, its default SAE, CPU/GPU auto
    python benchmarks/run.py --device cpu --repeats 7 --remote-host http://127.0.0.1:8289

Rows (module): 1–2 core overheads (core.py), 3 the authors' generation loop (authors.py), 4 exact ablation
(ablation.py), 5 batching (batching.py), 6 peak memory (memory.py), 7 remote NDIF (remote.py), 8 the default
perturbation run (perturb_run.py). Timing: benchmarks/timing.py (warm-up, interleaved repeats, median, IQR).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.report import REPO, Row, machine, render  # noqa: E402

ROW_GROUPS = ("1", "2", "3", "4", "5", "6", "7", "8")
# (number, what, goal) of every row a group produces, for rows that are skipped or fail
PLACEHOLDERS = {
    "1": [("1", "GradSAE scoring vs plain PyTorch fwd + bwd", "≤ 1.10×")],
    "2": [("2", "edited generate vs unedited HF generate", "≤ 1.15×")],
    "3": [("3", "edited generate vs the authors' loop", "≥ 5× faster")],
    "4": [("4a", "GradSAE scoring vs exact ablation", "≥ 20× faster"), ("4b", "Spearman", "≥ 0.6"),
          ("4c", "precision@10", "report")],
    "5": [("5a", "scoring batch 8 vs 1", "≥ 2.5×"), ("5b", "generate batch 8 vs 1", "≥ 2.5×")],
    "6": [("6", "peak memory, scoring vs forward", "report; ≤ 2×")],
    "7": [("7a", "remote scoring vs local", "report"), ("7b", "remote edited generation vs local", "report"),
          ("7c", "request bytes, sliced vs full SAE", "report"), ("7d", "request bytes, Gemma Scope size", "report")],
    "8": [("8", "default perturbation run", "≤ 30 min on 2 cores")],
}


def build_parser(doc: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or __doc__).split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-it", help="embedded name, local HF directory or hub id")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--layer", type=int, default=None, help="layer (default: the SAE's)")
    p.add_argument("--sae", default=None,
                   help="SAE (default: the model's shipped default); 'random' = random ReLU SAE at --layer")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per function after warm-up (default 5)")
    p.add_argument("--gen-tokens", type=int, default=32, help="new tokens in rows 2–3 (default 32; row 5 ≤ 16)")
    p.add_argument("--batch", type=int, default=8, help="batch size of row 5 (default 8)")
    p.add_argument("--ablation-examples", type=int, default=2, help="examples in row 4 (default 2)")
    p.add_argument("--ablation-latents", default="60",
                   help="latents ablated exactly per example in row 4, or 'all' (default 60)")
    p.add_argument("--ablation-batch", type=int, default=1, help="ablation rows per forward call (default 1)")
    p.add_argument("--memory-repeats", type=int, default=3, help="subprocesses per side in row 6 (default 3)")
    p.add_argument("--remote-host", default=None, help="NDIF server URL for row 7's latency (e.g. a local NDIF)")
    p.add_argument("--results-dir", default=str(REPO / "results"),
                   help="where row 8 looks for results/perturb/<model>-L<layer>/manifest.json")
    p.add_argument("--with-default-run", action="store_true",
                   help="row 8: run the default `experiments/perturb.py` here (long) instead of reading a manifest")
    p.add_argument("--rows", default=",".join(ROW_GROUPS), help="row groups to run, e.g. 1,2,4 (default all)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--note", default=None, help="a line shown at the top of the output (e.g. 'provisional')")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="Markdown output")
    return p


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def setup(args: argparse.Namespace, n_examples: int):
    from benchmarks.context import build_context

    if args.threads:
        torch.set_num_threads(args.threads)
    return build_context(args, n_examples)


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
    args = build_parser().parse_args(argv)
    groups = [g.strip() for g in args.rows.split(",") if g.strip()]
    unknown = set(groups) - set(ROW_GROUPS)
    if unknown or args.repeats < 1 or args.batch < 1 or args.ablation_examples < 1:
        raise SystemExit(f"bad options: rows {sorted(unknown)}, --repeats/--batch/--ablation-examples must be ≥ 1")
    pool = None if args.ablation_latents == "all" else int(args.ablation_latents)
    started = time.perf_counter()
    log(f"loading {args.model} ...")
    ctx = setup(args, n_examples=max(args.batch, args.ablation_examples))
    info_start = machine(ctx.device)

    from benchmarks import ablation, authors, batching, core, memory, perturb_run, remote

    makers: dict[str, Callable[[], list[Row]]] = {
        "1": lambda: [core.row_scoring(ctx)],
        "2": lambda: [core.row_generate(ctx)],
        "3": lambda: [authors.row_authors(ctx)],
        "4": lambda: ablation.rows_ablation(ctx, args.ablation_examples, pool, args.ablation_batch),
        "5": lambda: batching.rows_batching(ctx, args.batch),
        "6": lambda: [memory.row_memory(ctx, args.model, args.memory_repeats)],
        "7": lambda: remote.rows_remote(ctx, args.remote_host),
        "8": lambda: [perturb_run.row_default_run(args.model, str(ctx.device)) if args.with_default_run
                      else perturb_run.row_from_manifest(Path(args.results_dir), args.model, ctx.layer)],
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
