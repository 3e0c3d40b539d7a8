"""Faithfulness of each ranking method to exact ablation: per-example metrics, their summary with bootstrap CIs,
the tables and the plot (`experiments/faithfulness.py`).

Per correct example, over its candidates (the latents `exact` measured: the union of every method's top N),
for each method m other than `exact`:
- `spearman`: Spearman's rank correlation of m's scores with the exact drops;
- `p@k` (k = 5, 10, 20): |top-k by m ∩ top-k by exact| / k;
- `captured@k`: Σ of the exact drops of m's top k / Σ of the positive exact drops over the candidates — how
  much of the measured total effect m's top k carries (exact's own top k is the ceiling, also reported).
Records keep every candidate's scores, so these are recomputed from `examples.jsonl` without a rerun.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .plots import COLORS, _figure, _save
from .report import METHOD_LABELS, Cell, bootstrap_cell, markdown_table

TOP_K = (5, 10, 20)
LENGTH_BINS = (("1–3 tokens", 1, 3), ("4 tokens", 4, 4), ("≥ 5 tokens", 5, 10**9))  # ~thirds of SmolLM2's answers
METRIC_NAMES = ("spearman", *[f"p@{k}" for k in TOP_K], *[f"captured@{k}" for k in TOP_K])


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, ties to the lower index."""
    return np.lexsort((np.arange(values.size), -values))[:k]


def example_metrics(scores: dict[str, Sequence[float]], exact: Sequence[float]) -> dict[str, dict[str, float]]:
    """`{method: {"spearman", "p@5", ..., "captured@5", ...}}` for one example, plus `exact`'s own captured@k."""
    from scipy.stats import spearmanr

    truth = np.asarray(exact, dtype=np.float64)
    total = float(np.clip(truth, 0, None).sum())
    out: dict[str, dict[str, float]] = {}
    for method, values in [*scores.items(), ("exact", exact)]:
        v = np.asarray(values, dtype=np.float64)
        row: dict[str, float] = {}
        if method != "exact":
            rho = spearmanr(v, truth).statistic if v.size > 1 and np.ptp(v) > 0 and np.ptp(truth) > 0 else np.nan
            row["spearman"] = float(rho)
        for k in TOP_K:
            kk = min(k, v.size)
            top = _top(v, kk)
            if method != "exact":
                row[f"p@{k}"] = len(set(top.tolist()) & set(_top(truth, kk).tolist())) / kk if kk else np.nan
            row[f"captured@{k}"] = float(truth[top].sum() / total) if total > 0 else np.nan
        out[method] = row
    return out


def summarize_faithfulness(records: Sequence[dict]) -> dict[str, dict[str, Cell]]:
    """Mean (× 100 for fractions) and 95% bootstrap CI of each method's metrics over the records, NaNs left out."""
    methods = list(records[0]["metrics"]) if records else []
    out: dict[str, dict[str, Cell]] = {}
    for method in methods:
        names = list(records[0]["metrics"][method])
        out[method] = {}
        for name in names:
            values = [r["metrics"][method][name] for r in records]
            values = [v * scale(name) for v in values if v == v]
            out[method][name] = bootstrap_cell(values)
    return out


def scale(name: str) -> float:
    """Reported units: Spearman as is, the fractions (precision, captured) in percent."""
    return 1.0 if name == "spearman" else 100.0


def metric_text(cell: Cell, name: str) -> str:
    """A cell's text; Spearman's interval with two decimals (its scale is 1, the others' 100)."""
    return cell.text(ci_digits=2 if name == "spearman" else 1)


def faithfulness_rows(summary: dict) -> list[list[str]]:
    rows = []
    for method, cells in summary.items():
        label = METHOD_LABELS[method] + (" (ceiling)" if method == "exact" else "")
        rows.append([label, *[metric_text(cells[name], name) if name in cells else "—" for name in METRIC_NAMES]])
    return rows


def by_length_rows(records: Sequence[dict], metric: str = "spearman") -> tuple[list[str], list[list[str]]]:
    """`metric` per method by answer length (answer tokens), one column per bin with its n; "—" where a bin
    holds no example (each cell stays under its own bin's header)."""
    methods = [m for m in (records[0]["metrics"] if records else {}) if m != "exact"]
    header, rows = ["method"], {m: [] for m in methods}
    for label, low, high in LENGTH_BINS:
        chosen = [r for r in records if low <= r["answer_tokens"] <= high]
        header.append(f"{label} (n = {len(chosen)})")
        summary = summarize_faithfulness(chosen)
        for method in methods:
            cells = summary.get(method, {})
            rows[method].append(metric_text(cells[metric], metric) if metric in cells else "—")
    return header, [[METHOD_LABELS[m], *cells] for m, cells in rows.items()]


def paired_rows(records: Sequence[dict], reference: str = "gradsae") -> list[list[str]]:
    """`reference` − each other ranked method, per metric: the mean of the per-example differences and its 95%
    bootstrap interval (examples resampled whole, so both methods see the same examples), over the examples
    where both values exist."""
    methods = [m for m in (records[0]["metrics"] if records else {}) if m not in ("exact", reference)]
    if not records or reference not in records[0]["metrics"]:
        return []
    rows = []
    for method in methods:
        cells = []
        for name in METRIC_NAMES:
            pairs = [(r["metrics"][reference][name], r["metrics"][method][name]) for r in records]
            diffs = [(a - b) * scale(name) for a, b in pairs if a == a and b == b]
            cells.append(metric_text(bootstrap_cell(diffs), name))
        rows.append([f"{METHOD_LABELS[reference]} − {METHOD_LABELS[method]}", *cells])
    return rows


def render_faithfulness(title: str, records: Sequence[dict], notes: Sequence[str] = ()) -> str:
    summary = summarize_faithfulness(records)
    header = ["method", "Spearman vs exact", *[f"precision@{k}" for k in TOP_K],
              *[f"captured@{k} %" for k in TOP_K]]
    n_candidates = [len(r["candidates"]) for r in records]
    parts = [f"## {title}\n\n", f"n = {len(records)} examples; candidates per example: median "
             f"{int(np.median(n_candidates)) if records else 0}; cells: mean [95% bootstrap CI] (precision and "
             f"captured in %).\n"]
    parts += [f"\n{note}\n" for note in notes]
    parts.append("\n" + markdown_table(header, faithfulness_rows(summary)))
    paired = paired_rows(records)
    if paired:
        parts.append("\n**Paired differences** (per example, then mean [95% bootstrap CI]; > 0: GradSAE closer to "
                     "exact)\n\n" + markdown_table(["difference", *header[1:]], paired))
    for metric in ("spearman", "p@10"):
        length_header, length_rows = by_length_rows(records, metric)
        parts.append(f"\n**{metric} by answer length**\n\n" + markdown_table(length_header, length_rows))
    return "".join(parts)


def plot_faithfulness(summary: dict, path, title: str) -> None:
    """Spearman, precision@10 and captured@10 per method, with 95% CI bars."""
    plt = _figure()
    panels = (("spearman", "Spearman vs exact"), ("p@10", "precision@10 %"), ("captured@10", "captured@10 %"))
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 3.6))
    for ax, (name, label) in zip(axes, panels):
        methods = [m for m in summary if name in summary[m]]
        cells = [summary[m][name] for m in methods]
        x = np.arange(len(methods))
        ax.bar(x, [c.mean for c in cells], color=[COLORS.get(m, "gray") for m in methods], alpha=0.8)
        ax.errorbar(x, [c.mean for c in cells], yerr=[[c.mean - c.low for c in cells], [c.high - c.mean for c in cells]],
                    fmt="none", ecolor="black", capsize=3)
        ax.set_xticks(x, [METHOD_LABELS[m].replace(" ", "\n") for m in methods], fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)
