"""Layer sweep (paper Table 4 analog): the perturbation at one K for every shipped SAE of a model.

Each layer's run is exactly the perturbation of `SweepConfig.perturbation(layer)` (`experiments/perturb.py
--layer L --k K`: the same folder, so either resumes the other); the collated table goes to
`results/layer_sweep/<model>[-<option>_<value>...]/table.md` with `summary.json` (`naming.folder`: every
non-default result option in the name, so sweeps of different configurations never overwrite each other).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..config import SweepConfig, changed_result_options
from ..core.sae import shipped_layers
from ..core.selection import UNEDITED, Setting
from ..errors import OptionError
from ..remote import run_summary
from ..results.records import atomic_write_json, atomic_write_text
from ..results.report import (markdown_table, print_table, row_label, row_order, summarize, summary_json,
                               truncation_notes, write_outputs)
from .naming import folder
from .outputs import open_run
from .perturbation import run_perturbation
from .pipeline import open_model, prepare, splice_notes


def sweep_layers(config: SweepConfig) -> list[int]:
    """`config.layers`, else every layer with a shipped SAE for the model."""
    model = config.model.model
    layers = list(config.layers or shipped_layers(model))
    if not layers:
        raise OptionError(f"no shipped SAEs for {model}; pass {{layers}} with SAEs available, or another {{model}}")
    return layers


def sweep_folder(config: SweepConfig) -> Path:
    """`results/layer_sweep/<model>[-<option>_<value>...]`: every non-default result option in the name."""
    return folder("layer_sweep", config.model.model, changed_result_options(config))


def layer_sweep(config: SweepConfig) -> dict:
    """Every layer's perturbation (resuming each), then the collated table; returns the summary by layer."""
    layers = sweep_layers(config)
    ks = config.ks
    started = time.perf_counter()
    model = open_model(config)
    rows: dict[str, list[list[str]]] = {metric: [] for metric in ("em", "f1")}
    rows_of = row_order(config.method.methods)
    per_layer = {}
    for layer in layers:
        run = config.perturbation(layer)
        prepared = prepare(run, model)
        out_dir, manifest = open_run(run, "perturb", prepared)
        manifest.start()
        records = run_perturbation(prepared, run, out_dir)
        summary = summarize(records, ks, methods=config.method.methods)
        write_outputs(out_dir, f"Perturbation — {config.model.model}, layer {layer}, SAE {prepared.sae_spec}",
                      "perturb", summary, ks, len(records), {"n_answered": prepared.n_answered},
                      [*splice_notes(run), *truncation_notes(summary, ks, len(records))])
        manifest.finish(n_examples=len(records))
        per_layer[layer] = {"n_examples": len(records), "folder": str(out_dir), "settings": summary_json(summary)}
        depth = f"L{layer} ({100 * layer / model.n_layers:.0f}% depth)"
        for metric in rows:
            rows[metric].append([depth, summary[UNEDITED][metric].text()]
                                + [summary[Setting(m, w, k).key][metric].text() for m, w in rows_of for k in ks])
    header = ["layer", "w/o task"] + [f"{row_label(m, w)} K={k}" for m, w in rows_of for k in ks]
    sweep_dir = sweep_folder(config)
    title = f"Layer sweep — {config.model.model}, K = {', '.join(ks)}"
    text = f"## {title}\n\nn = {per_layer[layers[0]]['n_examples']} correct examples per layer; mean % [95% CI].\n"
    text += "".join(f"\n{note}\n" for note in splice_notes(config.perturbation(layers[0])))
    for metric in rows:
        text += f"\n**{metric.upper()}**\n\n" + markdown_table(header, rows[metric])
    atomic_write_text(sweep_dir / "table.md", text)
    atomic_write_json(sweep_dir / "summary.json", {"layers": per_layer, "seconds": round(time.perf_counter() - started, 1),
                                                   **run_summary(model)})
    for metric in rows:
        print_table(f"{title} — {metric.upper()}", header, rows[metric])
    print(f"table: {sweep_dir / 'table.md'}")
    return per_layer
