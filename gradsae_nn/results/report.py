"""Tables, confidence intervals and plots for the perturbation and steering experiments.

Layout follows the paper's Table 1: rows Baseline/GradSAE × TopK↓/BottomK↑, columns "w/o task" then each
K, for EM and F1. Cells are means in percent with a 95% percentile-bootstrap interval over examples (seeded,
so a resumed run's table equals an uninterrupted run's). The paper's numbers are printed beside ours as a
labelled reference: they are Gemma 2 9B IT with Gemma Scope, not these models.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.selection import UNEDITED, Setting
from ..modes import METHODS
from .explore import REPORT_FILE, build_report
from .plots import plot_settings
from .records import atomic_write_text

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
METHOD_LABELS = {"baseline": "Baseline", "gradsae": "GradSAE", "attribution": "Attribution",
                 "integrated-gradients": "Integrated gradients", "exact": "Exact ablation"}
METHOD_ORDER = tuple(METHOD_LABELS)   # table order: the paper's two first, baseline on top


def row_order(methods: Sequence[str] = METHODS) -> list[tuple[str, str]]:
    """The table's rows, (method, which), in `METHOD_ORDER`, TopK before BottomK."""
    return [(m, w) for m in METHOD_ORDER if m in methods for w in ("top", "bottom")]


def row_label(method: str, which: str) -> str:
    return f"{METHOD_LABELS[method]} {'TopK↓' if which == 'top' else 'BottomK↑'}"


def methods_of(summary: dict) -> list[str]:
    """The methods a summary (or a record's outputs) holds settings of, in `METHOD_ORDER`."""
    present = {key.split("/")[0] for key in summary if "/" in key}
    return [m for m in METHOD_ORDER if m in present]

PAPER_KS = ("1", "10", "20", "30", "50%")

# Shu, Wu et al. (EMNLP 2025), Gemma 2 9B IT, Gemma Scope layer 9; None = not given as a number.
PAPER = {
    "perturb": {
        "model": "Gemma 2 9B IT, layer 9 (paper, Table 1 top)",
        ("gradsae", "top"): {"em": (80.45, 51.21, 39.48, 37.80, 30.58), "f1": (82.67, 60.46, 50.51, 49.37, 43.33)},
        ("baseline", "top"): {"em": (94.79, 91.81, 85.47, 75.42, 53.42), "f1": (97.04, 94.46, 88.49, 79.62, 58.46)},
        ("gradsae", "bottom"): {"text": "98–100"},
        ("baseline", "bottom"): {"text": "98–100"},
    },
    "steer": {
        "model": "Gemma 2 9B IT, layer 9 (paper, Table 1 bottom)",
        ("gradsae", "top"): {"f1": (6.43, 10.21, 6.63, 4.88, 4.58)},
        ("baseline", "top"): {"f1": (5.77, 6.69, 3.32, 1.62, 0.55)},
        ("gradsae", "bottom"): {"text": "0"},
        ("baseline", "bottom"): {"text": "0"},
    },
}


@dataclass(frozen=True)
class Cell:
    """Mean of a per-example metric in percent, its 95% bootstrap interval, and the number of examples."""

    mean: float
    low: float
    high: float
    n: int

    def text(self, ci: bool = True, ci_digits: int = 1) -> str:
        """"mean [low, high]"; ci_digits: decimals of the interval (2 for a correlation, whose scale is 1)."""
        if self.n == 0:
            return "—"
        return f"{self.mean:.2f} [{self.low:.{ci_digits}f}, {self.high:.{ci_digits}f}]" if ci else f"{self.mean:.2f}"


def bootstrap_cell(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Cell:
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Cell(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Cell(float(data.mean()), float(low), float(high), int(data.size))


def summarize(records: Sequence[dict], ks: Sequence[str], unedited_key: str = UNEDITED,
              methods: Sequence[str] | None = None) -> dict:
    """`{"none": {"em": Cell, "f1": Cell}, "gradsae/top/10": {..., "truncated": n, "mean_k": x}, ...}`; methods:
    those of the records' outputs unless given (the paper's two for no records)."""
    out: dict = {}
    if methods is None:
        methods = methods_of(records[0]["outputs"]) if records else METHODS
    keys = [unedited_key] + [Setting(m, w, k).key for m, w in row_order(methods) for k in ks]
    for key in keys:
        present = [r for r in records if key in r["outputs"]]
        entry: dict = {metric: bootstrap_cell([100.0 * r["outputs"][key][metric] for r in present])
                       for metric in ("em", "f1")}
        if key != unedited_key:
            # steering records hold {"own": ..., "injected": ...}: K is about the example's own selection
            selections = [r["selections"][key].get("own", r["selections"][key]) for r in present]
            entry["truncated"] = sum(s["truncated"] for s in selections)
            entry["mean_k"] = float(np.mean([len(s["latents"]) for s in selections])) if selections else 0.0
        out[key] = entry
    return out


def summary_json(summary: dict) -> dict:
    return {key: {name: asdict(v) if isinstance(v, Cell) else v for name, v in entry.items()}
            for key, entry in summary.items()}


def table_rows(summary: dict, ks: Sequence[str], metric: str, ci: bool = True,
               unedited_key: str = UNEDITED) -> list[list[str]]:
    """Rows `[label, w/o task, K...]` of one metric, in the paper's row order."""
    unedited = summary[unedited_key][metric].text(ci)
    return [[row_label(m, w), unedited] + [summary[Setting(m, w, k).key][metric].text(ci) for k in ks]
            for m, w in row_order(methods_of(summary))]


def paper_rows(experiment: str, metric: str, ks: Sequence[str]) -> list[list[str]]:
    """The paper's rows for `metric` in our K columns; "—" where the paper gives no number (or no such K)."""
    ref = PAPER[experiment]
    rows = []
    for m, w in row_order():
        entry = ref[(m, w)]
        values = entry.get(metric)
        cells = []
        for k in ks:
            if k not in PAPER_KS:
                cells.append("—")
            elif values:
                cells.append(f"{values[PAPER_KS.index(k)]:.2f}")
            else:
                cells.append(entry.get("text", "—"))
        rows.append([f"{row_label(m, w)} (paper)", "100" if experiment == "perturb" else "—", *cells])
    return rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(title: str, experiment: str, summary: dict, ks: Sequence[str], n_examples: int,
                    notes: Sequence[str] = (), tables: Sequence[str] = ()) -> str:
    """The run's `table.md`: EM and F1 tables (the paper's beside them), then `tables` (extra Markdown blocks)."""
    header = ["", "w/o task", *[f"K={k}" for k in ks]]
    parts = [f"## {title}\n", f"n = {n_examples} examples; cells: mean % [95% bootstrap CI].\n"]
    parts += [f"{note}\n" for note in notes]
    for metric in ("em", "f1"):
        parts.append(f"\n**{metric.upper()}**\n\n")
        parts.append(markdown_table(header, table_rows(summary, ks, metric)))
        if experiment in PAPER:
            paper_header = ["reference: " + PAPER[experiment]["model"], "w/o task", *[f"K={k}" for k in ks]]
            parts.append("\n" + markdown_table(paper_header, paper_rows(experiment, metric, ks)))
    parts += list(tables)
    return "".join(parts)


def render_csv(summary: dict, ks: Sequence[str], unedited_key: str = UNEDITED) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "which", "k", "metric", "mean", "ci_low", "ci_high", "n", "truncated", "mean_k"])
    for metric in ("em", "f1"):
        cell = summary[unedited_key][metric]
        writer.writerow(["none", "", "", metric, f"{cell.mean:.4f}", f"{cell.low:.4f}", f"{cell.high:.4f}", cell.n, "", ""])
        for m, w in row_order(methods_of(summary)):
            for k in ks:
                entry = summary[Setting(m, w, k).key]
                cell = entry[metric]
                writer.writerow([m, w, k, metric, f"{cell.mean:.4f}", f"{cell.low:.4f}", f"{cell.high:.4f}", cell.n,
                                 entry["truncated"], f"{entry['mean_k']:.2f}"])
    return buffer.getvalue()


def rich_tables(title: str, summary: dict, ks: Sequence[str], experiment: str) -> list:
    from rich.table import Table

    tables = []
    for metric in ("em", "f1"):
        table = Table(title=f"{title} — {metric.upper()} (mean % [95% CI])")
        for column in ["", "w/o task", *[f"K={k}" for k in ks]]:
            table.add_column(column, justify="right")
        for row in table_rows(summary, ks, metric):
            table.add_row(*row)
        if experiment in PAPER:
            for row in paper_rows(experiment, metric, ks):
                table.add_row(*[f"[dim]{c}[/dim]" for c in row])
        tables.append(table)
    return tables


def write_outputs(out_dir: Path, title: str, experiment: str, summary: dict, ks: Sequence[str], n_examples: int,
                  extra: dict, notes: Sequence[str] = (), tables: Sequence[str] = ()) -> None:
    """summary.json, table.md, table.csv and plot.png under `out_dir`, each written atomically."""
    from .records import atomic_write_json

    atomic_write_json(out_dir / "summary.json", {"n_examples": n_examples, **extra, "settings": summary_json(summary)})
    atomic_write_text(out_dir / "table.md", render_markdown(title, experiment, summary, ks, n_examples, notes, tables))
    atomic_write_text(out_dir / "table.csv", render_csv(summary, ks))
    if n_examples:
        rows = [(m, w, row_label(m, w)) for m, w in row_order(methods_of(summary))]
        plot_settings(summary, ks, rows, out_dir / "plot.png", f"{title} (n = {n_examples})")
    build_report(out_dir)


def publish(out_dir: Path, manifest: "Any", experiment: str, title: str, records: Sequence[dict], ks: Sequence[str],
            stats: dict, notes: Sequence[str] = (), methods: Sequence[str] = METHODS, tables: Sequence[str] = ()) -> dict:
    """Summarise `records`, write every output file, close the manifest and print the tables; returns the summary.
    tables: extra Markdown blocks for `table.md` (e.g. `paired.paired_markdown`), also printed."""
    from rich.console import Console

    summary = summarize(records, ks, methods=methods)
    notes = [*notes, *ranking_notes(summary, ks), *truncation_notes(summary, ks, len(records))]
    write_outputs(out_dir, title, experiment, summary, ks, len(records), stats, notes, tables)
    manifest.finish(n_examples=len(records), **stats)
    report = out_dir / REPORT_FILE
    console = Console()
    for table in rich_tables(title, summary, ks, experiment):
        console.print(table)
    for note in notes:
        console.print(note)
    for block in tables:
        console.print(block, markup=False)
    console.print(f"results in {out_dir}; open {report} in a browser to explore them")
    return summary


def ranking_notes(summary: dict, ks: Sequence[str], metric: str = "em") -> list[str]:
    """With more than two methods, one line per K: whose TopK hurts most (lowest EM first) and whose BottomK least
    (highest first); "≈" joins methods whose means lie inside each other's 95% intervals."""
    methods = methods_of(summary)
    if len(methods) <= 2:
        return []
    lines = []
    for k in ks:
        parts = []
        for which, hurt_first in (("top", True), ("bottom", False)):
            cells = sorted(((summary[Setting(m, which, k).key][metric], m) for m in methods),
                           key=lambda cm: cm[0].mean, reverse=not hurt_first)
            text = METHOD_LABELS[cells[0][1]]
            for (previous, _), (cell, m) in zip(cells, cells[1:]):
                tied = previous.low <= cell.mean <= previous.high or cell.low <= previous.mean <= cell.high
                text += f" {'≈' if tied else '<' if hurt_first else '>'} {METHOD_LABELS[m]}"
            parts.append(f"{'TopK' if which == 'top' else 'BottomK'} {metric.upper()} {text}")
        lines.append(f"K={k}: " + "; ".join(parts) + ".")
    return lines


def truncation_notes(summary: dict, ks: Sequence[str], n_examples: int) -> list[str]:
    """One note per K at which some selection had fewer positive-scoring latents than K (so it took all of
    them, and TopK and BottomK overlap or coincide there)."""
    notes = []
    for k in ks:
        cut = {method: summary[Setting(method, "top", k).key] for method in methods_of(summary)}
        parts = [f"{method} in {entry['truncated']} of {n_examples} (mean size {entry['mean_k']:.1f})"
                 for method, entry in cut.items() if entry.get("truncated")]
        if parts:
            notes.append(f"K={k}: fewer latents than K had a positive score, so all were taken — {'; '.join(parts)}; "
                         f"there TopK and BottomK share latents (equal when every one is taken).")
    return notes


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str] = ()) -> None:
    """A table (right-aligned columns) and notes on the console."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in header:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note)
