"""Paired differences between ranking methods on the same examples, for the perturbation table.

Two methods' marginal intervals can overlap although one of them is worse on nearly every example; the test of
"whose TopK hurts the answer more" is the per-example difference. For each K: the mean over examples of the
reference method's EM or F1 minus another method's, TopK and BottomK, with a 95% percentile-bootstrap
interval (examples resampled whole, so both sides always see the same examples).
"""

from __future__ import annotations

from typing import Sequence

from ..core.selection import Setting
from .report import METHOD_LABELS, bootstrap_cell, markdown_table, methods_of


def paired_setting_rows(records: Sequence[dict], ks: Sequence[str], reference: str = "gradsae",
                        metric: str = "f1") -> list[list[str]]:
    """Rows `[label, K...]`: `reference` − each other method, TopK then BottomK, as "mean [low, high]" in
    points of `metric`; empty unless the records hold `reference` and at least two other methods."""
    present = methods_of(records[0]["outputs"]) if records else []
    others = [m for m in present if m != reference]
    if reference not in present or len(others) < 2:
        return []
    rows = []
    for method in others:
        for which in ("top", "bottom"):
            cells = []
            for k in ks:
                a, b = Setting(reference, which, k).key, Setting(method, which, k).key
                diffs = [100.0 * (r["outputs"][a][metric] - r["outputs"][b][metric])
                         for r in records if a in r["outputs"] and b in r["outputs"]]
                cells.append(bootstrap_cell(diffs).text())
            label = f"{METHOD_LABELS[reference]} − {METHOD_LABELS[method]}, {'TopK' if which == 'top' else 'BottomK'}"
            rows.append([label, *cells])
    return rows


def paired_markdown(records: Sequence[dict], ks: Sequence[str], reference: str = "gradsae") -> list[str]:
    """The paired-difference tables (F1, then EM) as Markdown blocks for `table.md`; none when not applicable."""
    blocks = []
    for metric in ("f1", "em"):
        rows = paired_setting_rows(records, ks, reference, metric)
        if rows:
            header = ["difference", *[f"K={k}" for k in ks]]
            blocks.append(f"\n**Paired differences, {metric.upper()}** (per example, then mean [95% bootstrap CI], "
                          f"points; TopK < 0: {METHOD_LABELS[reference]}'s TopK hurts more; BottomK > 0: its BottomK "
                          f"spares more)\n\n" + markdown_table(header, rows))
    return blocks
