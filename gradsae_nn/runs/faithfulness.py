"""Faithfulness (`experiments/faithfulness.py`): how well each ranking method finds the latents that exact
ablation says drive the answer, per correct example, and by layer over the model's shipped SAEs.

Each example is scored with every method (`--methods`, `exact` among them); its record keeps each method's
scores at the candidates `exact` measured (`core.methods.exact_candidate_ids`) and the exact drops, plus the
metrics of `results.faithfulness`. Records append to `examples.jsonl`; a rerun resumes.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..config import FaithfulnessConfig, changed_result_options
from ..core.methods import exact_candidate_ids
from ..remote import run_summary
from ..results.faithfulness import metric_text, plot_faithfulness, render_faithfulness, summarize_faithfulness
from ..results.explore import build_report
from ..results.records import atomic_write_json, atomic_write_text
from ..results.report import METHOD_LABELS, markdown_table, summary_json
from .jobs import run_resumable, score_items
from .naming import folder
from .outputs import open_run
from .pipeline import Item, Prepared, open_model, prepare, splice_notes

if TYPE_CHECKING:
    from ..core.scores import LatentScores
    from ..models import LoadedModel

EXAMPLES_FILE = "examples.jsonl"


def faithfulness_record(item: Item, scores: "LatentScores", config: FaithfulnessConfig) -> dict:
    from ..results.faithfulness import example_metrics

    candidates = exact_candidate_ids(scores, config.method.exact_candidates)
    ranked = [m for m in config.method.methods if m != "exact"]
    values = {m: [round(float(scores.by_method(m)[c]), 8) for c in candidates] for m in ranked}
    exact = [round(float(scores.exact[c]), 8) for c in candidates]
    return {"id": item.id, "question": item.example.question, "answer": item.record["prediction"],
            "answer_tokens": len(item.answer_ids), "n_active_last": scores.n_active_last,
            "target": round(scores.target, 6), "target_zero": scores.target_zero, "candidates": candidates,
            "scores": values, "exact": exact, "metrics": example_metrics(values, exact)}


def run_faithfulness(prepared: Prepared, config: FaithfulnessConfig, out_dir: Path) -> list[dict]:
    def process(chunk: list[Item]) -> Iterator[list[dict]]:
        scores = score_items(prepared, chunk, config)
        yield [faithfulness_record(item, scores[item.id], config) for item in chunk]

    done = run_resumable(out_dir / EXAMPLES_FILE, prepared.correct, config.batch_size,
                         f"faithfulness (L{prepared.layer})", process)
    return [done[it.id] for it in prepared.correct]


def faithfulness_at(config: FaithfulnessConfig, model: "LoadedModel") -> tuple[list[dict], dict]:
    """One layer's run (resuming its folder) and its outputs; returns (records, summary)."""
    started = time.perf_counter()
    prepared = prepare(config, model)
    out_dir, manifest = open_run(config, "faithfulness", prepared)
    manifest.start()
    records = run_faithfulness(prepared, config, out_dir)
    method = config.method
    title = f"Faithfulness to exact ablation — {config.model.model}, layer {prepared.layer}, SAE {prepared.sae_spec}"
    notes = [f"Exact ablation: the drop in the answer log-prob with one latent zeroed at the scored prompt tokens, "
             f"for the union of every method's top {method.exact_candidates}; integrated gradients with "
             f"{method.ig_steps} Gauss-Legendre nodes.", *splice_notes(config)]
    atomic_write_text(out_dir / "table.md", render_faithfulness(title, records, notes))
    summary = summarize_faithfulness(records)
    stats = {"n_answered": prepared.n_answered, "seconds_total": round(time.perf_counter() - started, 1),
             **prepared.extra, **run_summary(prepared.model)}
    atomic_write_json(out_dir / "summary.json", {"n_examples": len(records), **stats,
                                                 "methods": summary_json(summary)})
    if records:
        plot_faithfulness(summary, out_dir / "plot.png", f"{title} (n = {len(records)})")
    manifest.finish(n_examples=len(records), **stats)
    build_report(out_dir)
    print(f"results in {out_dir}")
    return records, summary


def faithfulness(config: FaithfulnessConfig, model: "LoadedModel | None" = None) -> dict:
    """The experiment at the configured layer, or at each of `--layers` with the collated by-layer table."""
    model = model or open_model(config)
    if not config.layers:
        records, summary = faithfulness_at(config, model)
        print(render_faithfulness("Faithfulness", records))
        return summary
    per_layer, rows = {}, []
    for layer in config.layers:
        run = dataclasses.replace(config, layers=None, method=dataclasses.replace(config.method, layer=layer))
        records, summary = faithfulness_at(run, model)
        per_layer[layer] = summary_json(summary)
        for method, cells in summary.items():
            if method != "exact":
                rows.append([f"L{layer}", METHOD_LABELS[method], str(len(records)), metric_text(cells["spearman"], "spearman"),
                             cells["p@10"].text(), cells["captured@10"].text()])
    out = folder("faithfulness", f"{config.model.model}-layers", changed_result_options(config))
    text = (f"## Faithfulness by layer — {config.model.model}\n\nMean [95% bootstrap CI] per layer's shipped SAE.\n\n"
            + markdown_table(["layer", "method", "n", "Spearman vs exact", "precision@10 %", "captured@10 %"], rows))
    atomic_write_text(out / "table.md", text)
    atomic_write_json(out / "summary.json", {"layers": per_layer})
    print(text)
    return per_layer
