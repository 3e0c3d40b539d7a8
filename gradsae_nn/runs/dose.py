"""Steering dose-response (`experiments/steer_sweep.py`): the steering experiment at several value scales, for
every method, edit variant (`modes.Variant`: the paper's swap, and two controls) and K, with one record per pair.

Each pair's generations (methods × variants × K × scales) share its scoring pass and run as rows of the same
generate batches; records append to `examples.jsonl` and the run resumes like every other. The summary
(`results.dose`) reports partner EM/F1, own-answer EM/F1 and breakage per cell, the paired GradSAE-vs-baseline
comparison with the scale chosen on one half of the pairs and reported on the other, and two plots.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..config import SteerSweepConfig
from ..remote import run_summary
from ..results.dose import comparison_json, paired_comparison, plot_dose, plot_frontier, render_dose, summarize_dose
from ..results.explore import build_report
from ..results.records import atomic_write_json, atomic_write_text
from ..results.report import summary_json
from .pipeline import splice_notes
from .steering import SteerCell, partner_notes, run_steering, start_steering

if TYPE_CHECKING:
    from ..models import LoadedModel


def sweep_cells(config: SteerSweepConfig) -> list[SteerCell]:
    """Every cell of the sweep, in table order: method, variant, K, scale (TopK only)."""
    return [SteerCell(method, "top", k, variant, scale) for method in config.method.methods for variant in config.variants
            for k in config.ks for scale in config.value_scales]


def steer_sweep(config: SteerSweepConfig, model: "LoadedModel | None" = None) -> dict:
    """The sweep end to end: partners, generations (resumable), summary files; returns the comparison."""
    from rich.console import Console

    started = time.perf_counter()
    prepared, out_dir, manifest, partners = start_steering(config, "steer_sweep", model)
    steering = config.steering
    cells = sweep_cells(config)
    records = run_steering(prepared, config, out_dir, cells, partners)
    keys = [cell.key for cell in cells]
    summary = summarize_dose(records, keys)
    comparison = paired_comparison(records, config.method.methods, config.ks, config.value_scales)
    title = (f"Steering dose-response — {config.model.model}, layer {prepared.layer}, SAE {prepared.sae_spec}, "
             f"values {steering.value_source}, positions {steering.positions}")
    notes = [*partner_notes(partners, len(records), steering.partners),
             "Edits: swap = zero own TopK, inject the partner's TopK × scale; inject-only = the same without "
             "zeroing; random = zero own TopK, inject K random latents active in the partner with the same values.",
             *splice_notes(config)]
    text = render_dose(title, summary, comparison, config.method.methods, config.variants, config.ks, config.value_scales,
                       len(records), notes)
    stats = {"n_answered": prepared.n_answered, "n_no_other_question": partners.no_other,
             "n_filtered_out": partners.filtered, "seconds_total": round(time.perf_counter() - started, 1),
             **prepared.extra, **run_summary(prepared.model)}
    atomic_write_text(out_dir / "table.md", text)
    atomic_write_json(out_dir / "summary.json", {"n_examples": len(records), **stats, "cells": summary_json(summary),
                                                 "comparison": comparison_json(comparison)})
    if records:
        args = (summary, config.method.methods, config.variants, config.ks, config.value_scales)
        plot_dose(*args, out_dir / "dose.png", f"{title} (n = {len(records)})")
        plot_frontier(*args, out_dir / "frontier.png", f"{title} (n = {len(records)})")
    manifest.finish(n_examples=len(records), **stats)
    build_report(out_dir)
    Console().print(text)
    print(f"results in {out_dir}")
    return comparison
