"""Local steering (paper RQ3): zero an example's TopK latents, inject those of another question on the same
context, and check whether the model now answers that other question.

    python experiments/steer.py                                   # defaults: SmolLM2, its default SAE
    python experiments/steer.py --value-source score --positions last   # the authors' final variant

Scores EM/F1 against the *partner* question's answers; "w/o task" is the unsteered answer scored the same
way. Writes examples.jsonl, summary.json, table.md, table.csv, plot.png and manifest.json under --out
(default results/steer/<model>-L<layer>[-<non-default options>]). Rerun the same command to resume.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from gradsae_nn.cli import ArgumentParser, run  # noqa: E402
from gradsae_nn.errors import UsageError  # noqa: E402
from gradsae_nn.experiment import begin, experiment_parser, method_options  # noqa: E402
from gradsae_nn.remote import run_summary  # noqa: E402
from gradsae_nn.report import publish  # noqa: E402
from gradsae_nn.splice import EDIT_POSITIONS  # noqa: E402
from gradsae_nn.steering import PARTNER_POOLS, VALUE_SOURCES, run_steering  # noqa: E402

DEFAULT_N_CORRECT = 50


def build_parser() -> ArgumentParser:
    parser = experiment_parser(__doc__, DEFAULT_N_CORRECT)
    parser.add_argument("--partner-seed", type=int, default=42, help="seed for choosing partners (default: 42)")
    parser.add_argument("--partners", default="correct", choices=PARTNER_POOLS,
                        help="partner pool: other correctly answered questions on the context (default), or any")
    parser.add_argument("--value-source", default="mean-activation", choices=VALUE_SOURCES,
                        help="values injected for the partner's latents (default: %(default)s)")
    parser.add_argument("--positions", default="all", choices=EDIT_POSITIONS,
                        help="edit every token (default) or only the last prompt token (the authors' final version)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    ks, prepared, out_dir, manifest = begin(args, "steer", {"partner_seed": 42, "partners": "correct",
                                                            "value_source": "mean-activation", "positions": "all"})
    options = method_options(args, prepared.layer)
    records, n_alone = run_steering(prepared, options, ks, out_dir, args.partner_seed, args.partners,
                                    args.value_source, args.positions, args.correct_f1)
    if not records:
        raise UsageError(f"none of the {len(prepared.correct)} correct examples has another "
                         f"{'correct ' if args.partners == 'correct' else ''}question on its context; raise "
                         f"--n-correct/--limit or use --partners any")
    title = (f"Local steering — {args.model}, layer {prepared.layer}, SAE {prepared.sae_spec}, values "
             f"{args.value_source}, positions {args.positions}")
    notes = [f"{len(records)} correct examples with a partner ({n_alone} without one, left out), from "
             f"{prepared.n_answered} answered questions; scored against the partner's gold answers."]
    stats = {"n_answered": prepared.n_answered, "n_without_partner": n_alone,
             "seconds_total": round(time.perf_counter() - started, 1), **prepared.extra, **run_summary(prepared.model)}
    publish(out_dir, manifest, "steer", title, records, ks, stats, notes)
    return 0


if __name__ == "__main__":
    run(main)
