"""The protocol ablation's tables: runs with one piece of the authors' protocol added to the project preset,
each against the project preset's run on the examples both hold.

A piece can change which examples count as correct (`correct-f1`, `answer-splice`, `format`), so each comparison
uses the examples the two runs share, matched by question id. For each setting it takes the piece's EM or F1
minus the reference's, per example. It reports the mean difference with a 95% percentile-bootstrap interval,
resampling whole examples.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ..core.selection import UNEDITED, Setting
from .report import bootstrap_cell, markdown_table, row_label, row_order


class PieceRun(NamedTuple):
    """One run of the ablation: `label` (e.g. "--splice reconstruct"), its records (`examples.jsonl` rows)."""

    label: str
    records: Sequence[dict]


def setting_keys(ks: Sequence[str], methods: Sequence[str]) -> list[str]:
    """The unedited output, then every setting in table order (`"none"`, `"gradsae/top/10"`, ...)."""
    return [UNEDITED] + [Setting(m, w, k).key for m, w in row_order(methods) for k in ks]


def key_label(key: str) -> str:
    if key == UNEDITED:
        return "w/o task"
    setting = Setting.parse(key)
    return f"{row_label(setting.method, setting.which)} K={setting.k}"


def shared(reference: Sequence[dict], variant: Sequence[dict]) -> list[tuple[dict, dict]]:
    """(reference record, variant record) for every question id in both, in the variant's order."""
    by_id = {r["id"]: r for r in reference}
    return [(by_id[v["id"]], v) for v in variant if v["id"] in by_id]


def differences(pairs: Sequence[tuple[dict, dict]], key: str, metric: str) -> list[float]:
    """Per shared example: the variant's `metric` minus the reference's in setting `key`, in points."""
    return [100.0 * (v["outputs"][key][metric] - r["outputs"][key][metric]) for r, v in pairs]


def ablation_rows(reference: Sequence[dict], pieces: Sequence[PieceRun], keys: Sequence[str],
                  metric: str) -> list[list[str]]:
    """Rows `[run, examples, cell per key]`: the reference's means first, then per piece "mean; Δ d [low, high]"
    (the piece's mean on the shared examples and its paired difference from the reference)."""
    rows = [["project preset (reference)", str(len(reference))]
            + [f"{bootstrap_cell([100.0 * r['outputs'][k][metric] for r in reference]).mean:.1f}" for k in keys]]
    for piece in pieces:
        pairs = shared(reference, piece.records)
        cells = []
        for key in keys:
            mean = float(np.mean([100.0 * v["outputs"][key][metric] for _, v in pairs])) if pairs else float("nan")
            cells.append(f"{mean:.1f}; Δ {bootstrap_cell(differences(pairs, key, metric)).text()}")
        rows.append([piece.label, f"{len(pairs)} of {len(piece.records)}", *cells])
    return rows


def paired_enough(reference: Sequence[dict], piece: PieceRun) -> bool:
    """Whether `piece` shares at least half the reference's examples: fewer say little about the piece."""
    return 2 * len(shared(reference, piece.records)) >= len(reference)


def largest_moves(reference: Sequence[dict], pieces: Sequence[PieceRun], keys: Sequence[str],
                  metric: str = "em") -> list[tuple[str, str, float]]:
    """Per piece sharing at least half the reference's examples, the setting its mean difference from the
    reference is largest in (by size): (label, setting label, mean difference in points), largest first. A piece
    that changes the correct set more than that is not ranked (`unpaired`): a few shared examples say little."""
    moves = []
    for piece in pieces:
        if not paired_enough(reference, piece):
            continue
        pairs = shared(reference, piece.records)
        means = {key: float(np.mean(differences(pairs, key, metric))) for key in keys}
        key = max(means, key=lambda k: abs(means[k]))
        moves.append((piece.label, key_label(key), means[key]))
    return sorted(moves, key=lambda m: -abs(m[2]))


def unpaired(reference: Sequence[dict], pieces: Sequence[PieceRun]) -> list[PieceRun]:
    """The pieces sharing fewer than half the reference's examples (their correct set differs)."""
    return [p for p in pieces if not paired_enough(reference, p)]


def ablation_markdown(title: str, reference: Sequence[dict], pieces: Sequence[PieceRun], keys: Sequence[str]) -> str:
    """The ablation's `table.md`: EM and F1 tables and the ranking of pieces by their largest EM change."""
    header = ["run", "examples (shared of run)", *map(key_label, keys)]
    text = (f"## {title}\n\nEach row adds one piece of the authors' protocol to the project preset. Cells: the run's "
            "mean % on the examples it shares with the reference (question ids both hold); Δ = per-example "
            "difference from the reference on them, mean [95% bootstrap CI], points.\n")
    for metric in ("em", "f1"):
        text += f"\n**{metric.upper()}**\n\n" + markdown_table(header, ablation_rows(reference, pieces, keys, metric))
    moves = largest_moves(reference, pieces, keys)
    if moves:
        text += "\nLargest EM change per piece, largest first: " + "; ".join(
            f"{label}: {delta:+.1f} points ({where})" for label, where, delta in moves) + ".\n"
    for piece in unpaired(reference, pieces):
        means = ", ".join(f"{key_label(k)} {np.mean([100.0 * r['outputs'][k]['em'] for r in piece.records]):.1f}"
                          for k in keys)
        text += (f"\n{piece.label} shares {len(shared(reference, piece.records))} of its {len(piece.records)} examples "
                 f"with the reference, so it is not ranked; its own EM on all of them: {means}.\n")
    return text
