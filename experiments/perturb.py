"""Perturbation (paper RQ1/RQ2): zero each correct example's TopK / BottomK latents, regenerate, score EM/F1.

    python experiments/perturb.py                      # SmolLM2-135M-Instruct, its default SAE, 50 examples
    python experiments/perturb.py --n-correct 200 --model gemma3-270m --k 1 10 50%

Prints the table in the paper's layout (with the paper's numbers as a labelled reference) and writes
examples.jsonl, summary.json, table.md, table.csv, plot.png and manifest.json under --out
(default results/perturb/<model>-L<layer>[-<non-default options>]). Rerun the same command to resume.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from gradsae_nn.cli import ArgumentParser, run  # noqa: E402
from gradsae_nn.experiment import begin, experiment_parser, method_options  # noqa: E402
from gradsae_nn.perturbation import run_perturbation  # noqa: E402
from gradsae_nn.remote import run_summary  # noqa: E402
from gradsae_nn.report import publish  # noqa: E402

DEFAULT_N_CORRECT = 50


def build_parser() -> ArgumentParser:
    return experiment_parser(__doc__, DEFAULT_N_CORRECT)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    ks, prepared, out_dir, manifest = begin(args, "perturb")
    options = method_options(args, prepared.layer)
    t0 = time.perf_counter()
    records = run_perturbation(prepared, options, ks, out_dir)
    seconds = time.perf_counter() - t0
    title = f"Perturbation — {args.model}, layer {prepared.layer}, SAE {prepared.sae_spec}"
    notes = [f"Correct set: the first {len(records)} correctly answered of {prepared.n_answered} questions "
             f"(seed {args.seed}); every setting zeroes the selected latents at every prompt and generated token."]
    stats = {"n_answered": prepared.n_answered, "seconds_total": round(time.perf_counter() - started, 1),
             "seconds_perturb": round(seconds, 1), **prepared.extra, **run_summary(prepared.model)}
    publish(out_dir, manifest, "perturb", title, records, ks, stats, notes)
    return 0


if __name__ == "__main__":
    run(main)
