"""Protocol ablation: which piece of the authors' protocol moves the perturbation's numbers, and by how much.

The reference is the perturbation under the project preset (`ProtocolAblationConfig.perturbation()`); each
piece's run is that run with one authors piece added (`perturbation(piece)`: exactly `experiments/perturb.py`
with the same options plus the piece's flags, so either resumes the other's folder). One model serves every
run. The collated tables (`results.ablation`) go to
`results/protocol_ablation/<reference folder name>[-pieces_<...>]/table.md`, with `summary.json`.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import ProtocolAblationConfig
from ..config.presets import DEFAULT_PIECES, piece_flags
from ..remote import run_summary
from ..results.ablation import PieceRun, ablation_markdown, ablation_rows, key_label, largest_moves, setting_keys
from ..results.records import atomic_write_json, atomic_write_text
from ..results.report import print_table
from .naming import RESULTS_ROOT, folder, safe
from .perturbation import perturb_run
from .pipeline import open_model


def ablation_folder(config: ProtocolAblationConfig, reference_dir: Path) -> Path:
    """`results/protocol_ablation/<the reference run's folder name>`, plus the pieces when not the default set."""
    changed = {} if tuple(config.pieces) == DEFAULT_PIECES else {"pieces": ",".join(config.pieces)}
    return folder("protocol_ablation", safe(reference_dir.name), changed, RESULTS_ROOT)


def protocol_ablation(config: ProtocolAblationConfig) -> dict:
    """The reference run, then each piece's run (each resumed), then the paired tables; returns the summary."""
    started = time.perf_counter()
    runs = {piece: config.perturbation(piece) for piece in config.pieces}   # every check before any work
    model = open_model(config)
    reference = perturb_run(config.perturbation(), model)
    pieces, folders = [], {"reference": str(reference.out_dir)}
    for piece, run in runs.items():
        done = perturb_run(run, model)
        pieces.append(PieceRun(piece_flags(piece), done.records))
        folders[piece] = str(done.out_dir)
    keys = setting_keys(config.ks, config.method.methods)
    out_dir = ablation_folder(config, reference.out_dir)
    title = f"Protocol ablation — {config.model.model}, reference {reference.out_dir.name}"
    atomic_write_text(out_dir / "table.md", ablation_markdown(title, reference.records, pieces, keys))
    summary = {"folders": folders, "n_reference": len(reference.records),
               "largest_em_moves": [{"piece": p, "setting": s, "em_points": round(d, 2)}
                                    for p, s, d in largest_moves(reference.records, pieces, keys)],
               "seconds": round(time.perf_counter() - started, 1), **run_summary(model)}
    atomic_write_json(out_dir / "summary.json", summary)
    header = ["run", "examples", *map(key_label, keys)]
    for metric in ("em", "f1"):
        print_table(f"{title} — {metric.upper()}", header, ablation_rows(reference.records, pieces, keys, metric))
    print(f"table: {out_dir / 'table.md'}")
    return summary
