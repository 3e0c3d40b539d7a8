"""The steering dose-response sweep's summary: every cell's partner and own-answer scores with bootstrap CIs, the
paired GradSAE-vs-baseline comparison on held-out pairs, a markdown table and two plots.

Cells are keyed `"<method>/<variant>/<K>/x<scale>"` (`runs.steering.SteerCell`). For each output: partner
EM/F1 (against the partner's golds: did the model answer the other question?), own EM/F1 (against the example's
golds: how much of its answer survived) and broken (empty, or not a span of the context), all in percent.

The comparison (`paired_comparison`): pairs are split in two halves by a hash of the example id (`half`); on
half A each method's best scale (highest mean partner F1, `swap` edits; ties to the smaller scale) is chosen,
and on half B the per-pair difference GradSAE − baseline in partner F1 at those scales is bootstrapped (paired:
the same resampled pairs for both methods), so the choice of scale never sees the pairs it is judged on.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Sequence

import numpy as np

from .plots import COLORS, _figure, _save
from .report import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Cell, bootstrap_cell, markdown_table

METRICS = ("em", "f1", "own_em", "own_f1", "broken")
METRIC_LABELS = {"em": "partner EM", "f1": "partner F1", "own_em": "own EM", "own_f1": "own F1",
                 "broken": "broken"}
VARIANT_STYLE = {"swap": "-", "inject-only": "--", "random": ":"}


def cell_key(method: str, variant: str, k: str, scale: float) -> str:
    return f"{method}/{variant}/{k}/x{scale:g}"


def half(example_id: str) -> str:
    """"A" (chooses the scale) or "B" (reports): the parity of the id's sha256, so fixed for every run."""
    return "A" if int(hashlib.sha256(example_id.encode()).hexdigest(), 16) % 2 == 0 else "B"


def summarize_dose(records: Sequence[dict], keys: Sequence[str]) -> dict[str, dict[str, Cell]]:
    """`{key: {metric: Cell}}` for "none" and every key, over the records that hold it."""
    out = {}
    for key in ["none", *keys]:
        present = [r["outputs"][key] for r in records if key in r["outputs"]]
        out[key] = {m: bootstrap_cell([100.0 * o[m] for o in present]) for m in METRICS}
    return out


def paired_bootstrap(diffs: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Cell:
    """Mean of per-pair differences and its 95% percentile interval (pairs resampled whole)."""
    return bootstrap_cell(diffs, resamples, seed)


def paired_comparison(records: Sequence[dict], methods: Sequence[str], ks: Sequence[str], scales: Sequence[float],
                      variant: str = "swap") -> dict:
    """Per K: each method's scale chosen on half A, its partner F1 on half B, and GradSAE − baseline on B."""
    by_half = {h: [r for r in records if half(r["id"]) == h] for h in ("A", "B")}
    out: dict = {}
    for k in ks:
        best, report = {}, {}
        for method in methods:
            means = [(np.mean([r["outputs"][cell_key(method, variant, k, s)]["f1"] for r in by_half["A"]])
                      if by_half["A"] else 0.0, s) for s in scales]
            best[method] = max(means, key=lambda m: (m[0], -m[1]))[1]
            report[method] = bootstrap_cell([100.0 * r["outputs"][cell_key(method, variant, k, best[method])]["f1"]
                                             for r in by_half["B"]])
        entry = {"best_scale": best, "partner_f1_B": report, "n_A": len(by_half["A"]), "n_B": len(by_half["B"])}
        if {"gradsae", "baseline"} <= set(methods):
            entry["gradsae_minus_baseline"] = paired_bootstrap(
                [100.0 * (r["outputs"][cell_key("gradsae", variant, k, best["gradsae"])]["f1"]
                          - r["outputs"][cell_key("baseline", variant, k, best["baseline"])]["f1"]) for r in by_half["B"]])
        out[k] = entry
    return out


def comparison_json(comparison: dict) -> dict:
    """`paired_comparison`'s result with its cells as plain dicts."""
    return {k: {name: ({m: asdict(c) for m, c in value.items()} if name == "partner_f1_B"
                       else asdict(value) if isinstance(value, Cell) else value) for name, value in entry.items()}
            for k, entry in comparison.items()}


def render_dose(title: str, summary: dict, comparison: dict, methods: Sequence[str], variants: Sequence[str],
                ks: Sequence[str], scales: Sequence[float], n: int, notes: Sequence[str] = ()) -> str:
    header = ["method", "edit", "scale", *[METRIC_LABELS[m] for m in METRICS]]
    parts = [f"## {title}\n\n", f"n = {n} pairs; cells: mean % [95% bootstrap CI].\n"]
    parts += [f"\n{note}\n" for note in notes]
    unedited = summary["none"]
    parts.append("\nUnsteered: " + ", ".join(f"{METRIC_LABELS[m]} {unedited[m].text()}" for m in METRICS) + ".\n")
    for k in ks:
        rows = [[method, variant, f"×{s:g}", *[summary[cell_key(method, variant, k, s)][m].text() for m in METRICS]]
                for method in methods for variant in variants for s in scales]
        parts.append(f"\n**K = {k}**\n\n" + markdown_table(header, rows))
    rows = []
    for k, entry in comparison.items():
        diff = entry.get("gradsae_minus_baseline")
        rows.append([k, *[f"×{entry['best_scale'][m]:g}" for m in methods],
                     *[entry["partner_f1_B"][m].text() for m in methods], diff.text() if diff else "—",
                     f"{entry['n_A']} / {entry['n_B']}"])
    header = ["K", *[f"{m} scale (chosen on A)" for m in methods], *[f"{m} partner F1 on B" for m in methods],
              "GradSAE − baseline on B (paired)", "pairs A / B"]
    parts.append("\n**Paired comparison** (swap edits; scale chosen on half A, reported on half B)\n\n"
                 + markdown_table(header, rows))
    return "".join(parts)


def _panels(n: int):
    return _figure().subplots(1, n, figsize=(5 * n, 4.2), sharey=True, squeeze=False)


def _finish(fig, axes, ylabel: str, title: str, path) -> None:
    """Y label, one legend below the panels, title; written atomically."""
    axes[0][0].set_ylabel(ylabel)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    _save(fig, path)


def plot_dose(summary: dict, methods: Sequence[str], variants: Sequence[str], ks: Sequence[str],
              scales: Sequence[float], path, title: str) -> None:
    """Partner F1 against the value scale (log axis), one panel per K, one colour per method, one line style per
    edit variant, 95% CI bands."""
    fig, axes = _panels(len(ks))
    for ax, k in zip(axes[0], ks):
        for method in methods:
            for variant in variants:
                cells = [summary[cell_key(method, variant, k, s)]["f1"] for s in scales]
                ax.plot(scales, [c.mean for c in cells], marker="o", color=COLORS.get(method, "gray"),
                        linestyle=VARIANT_STYLE.get(variant, "-"), label=f"{method} {variant}")
                ax.fill_between(scales, [c.low for c in cells], [c.high for c in cells],
                                color=COLORS.get(method, "gray"), alpha=0.08)
        ax.axhline(summary["none"]["f1"].mean, color="gray", linewidth=1, linestyle=":", label="unsteered")
        ax.set_xscale("log", base=2)
        ax.set_xticks(scales, [f"{s:g}" for s in scales])
        ax.set_xlabel("value scale")
        ax.set_title(f"K = {k}")
        ax.grid(alpha=0.3)
    _finish(fig, axes, "partner F1 % (mean, 95% CI)", title, path)


def plot_frontier(summary: dict, methods: Sequence[str], variants: Sequence[str], ks: Sequence[str],
                  scales: Sequence[float], path, title: str) -> None:
    """Partner F1 against own-answer F1 (how much of the original answer survives), one point per scale: the
    steering/breakage frontier. Up and to the right is better; the unsteered model sits at (own F1, 0)."""
    fig, axes = _panels(len(ks))
    for ax, k in zip(axes[0], ks):
        for method in methods:
            for variant in variants:
                cells = [summary[cell_key(method, variant, k, s)] for s in scales]
                xs, ys = [c["own_f1"].mean for c in cells], [c["f1"].mean for c in cells]
                ax.plot(xs, ys, marker="o", markersize=3, color=COLORS.get(method, "gray"),
                        linestyle=VARIANT_STYLE.get(variant, "-"), label=f"{method} {variant}")
                if variant == "swap":
                    for x, y, s in zip(xs, ys, scales):
                        ax.annotate(f"×{s:g}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        none = summary["none"]
        ax.plot([none["own_f1"].mean], [none["f1"].mean], marker="*", color="black", markersize=10, linestyle="",
                label="unsteered")
        ax.set_xlabel("own-answer F1 % (retention)")
        ax.set_title(f"K = {k}")
        ax.grid(alpha=0.3)
    _finish(fig, axes, "partner F1 %", title, path)
