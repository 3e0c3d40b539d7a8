"""Selection statistics (paper Table 3): active latents, K = 50% size, and overlap of the selected sets
across methods (cross) and across questions sharing a context (inner).

    python experiments/stats.py                     # SmolLM2, its default SAE, 50 correct examples
    python experiments/stats.py --population answered --limit 500

Scoring only, no generation. Writes examples.jsonl, summary.json, table.md and manifest.json under --out
(default results/stats/<model>-L<layer>[-<non-default options>]).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gradsae_nn.cli import ArgumentParser, run  # noqa: E402
from gradsae_nn.experiment import begin, experiment_parser, method_options  # noqa: E402
from gradsae_nn.overlap import run_stats, selection_stats, stats_rows  # noqa: E402
from gradsae_nn.errors import UsageError  # noqa: E402
from gradsae_nn.records import atomic_write_json, atomic_write_text  # noqa: E402
from gradsae_nn.remote import run_summary  # noqa: E402
from gradsae_nn.report import markdown_table  # noqa: E402

DEFAULT_N_CORRECT = 50


def build_parser() -> ArgumentParser:
    parser = experiment_parser(__doc__, DEFAULT_N_CORRECT, default_ks=("50%",))
    parser.add_argument("--population", default="correct", choices=["correct", "answered"],
                        help="examples to score: the correct set (default) or every answered question "
                             "(scored on the model's own answer)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.k) != 1:
        raise UsageError(f"stats uses one K, got --k {' '.join(args.k)}; pass e.g. --k 50%")
    started = time.perf_counter()
    ks, prepared, out_dir, manifest = begin(args, "stats", {"k": ["50%"], "population": "correct"})
    records = run_stats(prepared, method_options(args, prepared.layer), ks[0], out_dir, args.population)
    stats = selection_stats(records, ks[0])
    rows = stats_rows(stats)
    title = f"Selection statistics — {args.model}, layer {prepared.layer}, SAE {prepared.sae_spec}, K = {ks[0]}"
    note = (f"{stats['n_examples']} examples ({args.population}; {prepared.n_answered} answered), "
            f"{stats['n_pairs']} same-context pairs over {stats['n_contexts_with_pairs']} contexts. "
            f"Overlap = |A∩B| / min(|A|, |B|). Paper: Gemma 2 9B IT, layer 9.")
    atomic_write_text(out_dir / "table.md", f"## {title}\n\n{note}\n\n"
                      + markdown_table(["", "ours", "paper (Table 3)"], rows))
    extra = {"n_answered": prepared.n_answered, "seconds_total": round(time.perf_counter() - started, 1),
             **run_summary(prepared.model)}
    atomic_write_json(out_dir / "summary.json", {**stats, **extra})
    manifest.finish(**extra)
    table = Table(title=title)
    for column in ("", "ours", "paper (Table 3)"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(note)
    console.print(f"results in {out_dir}")
    return 0


if __name__ == "__main__":
    run(main)
