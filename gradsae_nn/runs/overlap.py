"""Selection statistics (paper Table 3): how many latents fire, and how much the selected sets overlap.

- cross overlap: for one example, GradSAE's TopK (BottomK) vs the baseline's, at the same K;
- inner overlap: for one method, the TopK (BottomK) sets of two questions that share a context, over every
  such pair.

overlap(A, B) = |A ∩ B| / min(|A|, |B|): with K = 50%, two questions' sets can differ in size (each is half
of its own active count), and this is 1 when the smaller set lies inside the larger one.
"""

from __future__ import annotations

from itertools import combinations
from statistics import fmean
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from ..config import StatsConfig
from ..core.selection import Setting
from ..modes import METHODS, WHICH
from ..remote import run_summary
from ..results.explore import build_report
from ..results.records import atomic_write_json, atomic_write_text
from ..results.plots import plot_bars
from ..results.report import markdown_table, print_table
from .jobs import run_resumable, score_items, select_all, selection_record
from .outputs import open_run
from .pipeline import Item, Prepared, prepare

if TYPE_CHECKING:
    from ..models import LoadedModel


def overlap(a: Sequence[int], b: Sequence[int]) -> float:
    if not a or not b:
        return float("nan")
    return len(set(a) & set(b)) / min(len(a), len(b))


def _mean(values: Sequence[float]) -> float | None:
    clean = [v for v in values if v == v]
    return 100.0 * fmean(clean) if clean else None


def selection_stats(records: Sequence[dict], k: str) -> dict:
    """Table 3 numbers from per-example records holding `selections` (setting key → {"latents": [...]})
    and `context_id`, `n_active_last`; overlaps in percent, None where there is nothing to compare."""
    out: dict = {
        "n_examples": len(records),
        "mean_active_last": fmean(r["n_active_last"] for r in records) if records else None,
        "mean_k": {m: fmean(len(r["selections"][Setting(m, "top", k).key]["latents"]) for r in records) if records
                   else None for m in METHODS},
        "mean_positive": {m: fmean(r["n_positive"][m] for r in records) if records else None for m in METHODS},
    }
    for which in WHICH:
        out[f"cross_{which}"] = _mean([overlap(r["selections"][Setting("gradsae", which, k).key]["latents"],
                                               r["selections"][Setting("baseline", which, k).key]["latents"])
                                       for r in records])
    by_context: dict[str, list[dict]] = {}
    for record in records:
        by_context.setdefault(record["context_id"], []).append(record)
    pairs = [pair for group in by_context.values() for pair in combinations(group, 2)]
    out["n_pairs"] = len(pairs)
    out["n_contexts_with_pairs"] = sum(len(g) > 1 for g in by_context.values())
    for method in METHODS:
        for which in WHICH:
            key = Setting(method, which, k).key
            out[f"inner_{which}_{method}"] = _mean([overlap(a["selections"][key]["latents"],
                                                            b["selections"][key]["latents"]) for a, b in pairs])
    return out


PAPER_STATS = {"mean_active_last": 103.41, "mean_k": 51.46, "cross_top": 18.06, "cross_bottom": 0.33,
               "inner_top_baseline": 89.91, "inner_top_gradsae": 50.46, "inner_bottom_baseline": 92.17,
               "inner_bottom_gradsae": 0.15}


PAPER_K = "50%"
PAPER_STATS_MODEL = "Gemma 2 9B IT, layer 9"
STAT_ROWS = (  # (key in the statistics, label, a percentage?, depends on K?)
    ("mean_active_last", "non-zero latents at the last prompt token (mean)", False, False),
    ("mean_k", "K = {k} (mean size, GradSAE TopK)", False, True),
    ("cross_top", "cross overlap TopK (GradSAE vs baseline)", True, True),
    ("cross_bottom", "cross overlap BottomK (GradSAE vs baseline)", True, True),
    ("inner_top_baseline", "inner overlap TopK, baseline", True, True),
    ("inner_top_gradsae", "inner overlap TopK, GradSAE", True, True),
    ("inner_bottom_baseline", "inner overlap BottomK, baseline", True, True),
    ("inner_bottom_gradsae", "inner overlap BottomK, GradSAE", True, True),
)


def stat_values(stats: dict, k: str) -> list[tuple[str, float | None, float | None, bool]]:
    """`(label, ours, paper, percentage?)` per Table 3 row; the paper's K-dependent numbers (at K = 50%) are
    None at any other K, since they would not be comparable."""
    out = []
    for key, label, pct, by_k in STAT_ROWS:
        ours = stats[key]["gradsae"] if key == "mean_k" else stats[key]
        paper = PAPER_STATS[key] if (k == PAPER_K or not by_k) else None
        out.append((label.format(k=k), ours, paper, pct))
    return out


def stats_rows(stats: dict, k: str = PAPER_K) -> list[list[str]]:
    """`[quantity, ours, paper]` rows for the Table 3 layout ("—" where there is no number)."""
    def fmt(value: float | None, pct: bool) -> str:
        return "—" if value is None else (f"{value:.2f}%" if pct else f"{value:.2f}")

    return [[label, fmt(ours, pct), fmt(paper, pct)] for label, ours, paper, pct in stat_values(stats, k)]


def stats_csv(stats: dict, k: str) -> str:
    lines = ["quantity,ours,paper,unit"]
    for label, ours, paper, pct in stat_values(stats, k):
        cells = ["" if v is None else f"{v:.4f}" for v in (ours, paper)]
        lines.append(f"\"{label}\",{cells[0]},{cells[1]},{'%' if pct else 'latents'}")
    return "\n".join(lines) + "\n"


def run_stats(prepared: Prepared, config: StatsConfig, out_dir: Path) -> list[dict]:
    """Per-example selection records for the Table 3 statistics (scoring only, no generation); resumes."""
    (k,) = config.ks
    if config.population == "correct":
        items = prepared.correct
    else:
        items = [it for it in prepared.answered.values() if it.answer_ids]

    pad = bool(config.method.pad_topk)

    def process(chunk: list[Item]) -> Iterator[list[dict]]:
        scores = score_items(prepared, chunk, config)
        yield [{"id": item.id, "context_id": hashlib.sha1(item.example.context.encode()).hexdigest()[:12],
                "n_active_last": scores[item.id].n_active_last, "scored_tokens": scores[item.id].n_tokens,
                "n_positive": {m: int((scores[item.id].by_method(m) > 0).sum()) for m in METHODS},
                "selections": {key: selection_record(sel) for key, sel in select_all(scores[item.id], [k], pad=pad).items()}}
               for item in chunk]

    done = run_resumable(out_dir / "examples.jsonl", items, config.batch_size, f"scoring (L{prepared.layer})", process)
    return [done[it.id] for it in items]


def stats(config: StatsConfig, model: "LoadedModel | None" = None) -> dict:
    """The selection statistics end to end: scores of the population, then table.md, summary.json and the
    manifest in the run's folder (resuming what it holds); returns the statistics."""
    started = time.perf_counter()
    prepared = prepare(config, model)
    out_dir, manifest = open_run(config, "stats", prepared)
    manifest.start()
    records = run_stats(prepared, config, out_dir)
    (k,) = config.ks
    numbers = selection_stats(records, k)
    rows = stats_rows(numbers, k)
    title = (f"Selection statistics — {config.model.model}, layer {prepared.layer}, SAE {prepared.sae_spec}, "
             f"K = {k}")
    note = (f"{numbers['n_examples']} examples ({config.population}; {prepared.n_answered} answered), "
            f"{numbers['n_pairs']} same-context pairs over {numbers['n_contexts_with_pairs']} contexts. "
            f"Overlap = |A∩B| / min(|A|, |B|). Paper: {PAPER_STATS_MODEL}.")
    if k != PAPER_K:
        note += f" The paper's overlaps are at K = {PAPER_K}, so they are not shown beside K = {k}."
    header = ["", "ours", "paper (Table 3)"]
    atomic_write_text(out_dir / "table.md", f"## {title}\n\n{note}\n\n" + markdown_table(header, rows))
    atomic_write_text(out_dir / "table.csv", stats_csv(numbers, k))
    overlaps = [v for v in stat_values(numbers, k) if v[3]]
    series = {"ours": [v[1] for v in overlaps]}
    if k == PAPER_K:
        series[f"paper (Table 3, {PAPER_STATS_MODEL})"] = [v[2] for v in overlaps]
    plot_bars(out_dir / "plot.png", [v[0] for v in overlaps], series, f"{title} (n = {numbers['n_examples']})",
              "overlap (%)")
    extra = {"n_answered": prepared.n_answered, "seconds_total": round(time.perf_counter() - started, 1),
             **run_summary(prepared.model)}
    atomic_write_json(out_dir / "summary.json", {**numbers, **extra})
    manifest.finish(**extra)
    build_report(out_dir)
    print_table(title, header, rows, [note, f"results in {out_dir}"])
    return numbers
