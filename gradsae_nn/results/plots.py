"""Figures of the results (matplotlib, Agg, written atomically as PNG): EM/F1 against K for every setting, and
grouped bars for the selection statistics."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.selection import UNEDITED, Setting

COLORS = {"gradsae": "tab:red", "baseline": "tab:blue", "attribution": "tab:green", "integrated-gradients": "tab:purple",
          "exact": "black"}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _figure().close(fig)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def plot_settings(summary: dict, ks: Sequence[str], rows: Sequence[tuple[str, str, str]], path: Path, title: str,
                  unedited_key: str = UNEDITED) -> None:
    """EM and F1 vs K for each `(method, which, label)` row: GradSAE vs baseline, TopK (solid) vs BottomK
    (dashed), 95% CI bands. The legend sits below the axes, so it never hides a point."""
    plt = _figure()
    ncol = min(len(rows) + 1, 4)  # legend columns; rows of legend grow with the number of methods
    legend_rows = -(-(len(rows) + 1) // ncol)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.9 + 0.25 * legend_rows), sharey=True)
    x = np.arange(len(ks))
    for ax, metric in zip(axes, ("em", "f1")):
        for m, w, label in rows:
            cells = [summary[Setting(m, w, k).key][metric] for k in ks]
            ax.plot(x, [c.mean for c in cells], marker="o" if w == "top" else "s", color=COLORS[m],
                    linestyle="-" if w == "top" else "--", label=label)
            ax.fill_between(x, [c.low for c in cells], [c.high for c in cells], color=COLORS[m], alpha=0.12)
        ax.axhline(summary[unedited_key][metric].mean, color="gray", linewidth=1, linestyle=":", label="w/o task")
        ax.set_xticks(x, [f"K={k}" for k in ks])
        ax.set_title(metric.upper())
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% (mean, 95% bootstrap CI)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.02 + 0.055 * legend_rows, 1, 1))
    _save(fig, path)


def plot_bars(path: Path, labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str,
              ylabel: str) -> None:
    """Grouped horizontal bars: one group per label, one bar per series (None = no bar); values printed."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(labels) * max(1, len(series)) / 1.5 + 1.2))
    height = 0.8 / max(1, len(series))
    y = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        pos = y + (i - (len(series) - 1) / 2) * height
        vals = [np.nan if v is None else v for v in values]
        bars = ax.barh(pos, vals, height=height, label=name)
        ax.bar_label(bars, labels=["—" if v is None else f"{v:.1f}" for v in values], fontsize=7, padding=2)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12 * max([v for values in series.values() for v in values if v is not None], default=1))
    ax.set_xlabel(ylabel)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9, pad=22)
    fig.tight_layout()
    _save(fig, path)
