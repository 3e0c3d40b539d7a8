"""Perturbation (paper RQ1/RQ2): zero an example's TopK or BottomK latents at every token, regenerate greedily.

For each correct example: score it (GradSAE and the activation baseline, and any other `--methods`), select
TopK/BottomK for each K,
and generate once per setting with those latents zeroed at every prompt and generated position, plus
once unedited ("none", which must reproduce the correct answer). EM/F1 against the gold answers.

Records (`examples.jsonl`, one line per finished example, append-only): id, question, golds, the answer
step's prediction, token counts, every setting's selection (latents best-first with scores) and output.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple, Sequence

from ..config import ExperimentConfig, PerturbConfig
from ..core.edits import LatentEdit
from ..core.selection import UNEDITED, settings
from ..core.tokens import TOKEN_LATENTS
from ..modes import METHODS
from ..remote import run_summary
from ..results.paired import paired_markdown
from ..results.report import publish
from ..results.tokens import TOKENS_FILE
from .jobs import (GenerationJob, job_groups, run_job_groups, run_resumable, score_items, select_all, selection_record,
                   write_token_details)
from .outputs import open_run
from .pipeline import Item, Prepared, prepare, splice_notes

if TYPE_CHECKING:
    from ..core.scores import LatentScores
    from ..models import LoadedModel

EXAMPLES_FILE = "examples.jsonl"


def perturbation_jobs(item: Item, scores: "LatentScores", ks: Sequence[str], pad: bool = False,
                      methods: Sequence[str] = METHODS) -> tuple[list[GenerationJob], dict]:
    """The unedited job plus one zeroing job per setting; also the selections (`pad`: padded TopK), as records."""
    selections = select_all(scores, ks, methods, pad=pad)
    golds = item.example.answers
    jobs = [GenerationJob(item.id, UNEDITED, item.prompt_ids, LatentEdit(), golds)]
    jobs += [GenerationJob(item.id, key, item.prompt_ids, LatentEdit(zero=sel.latents), golds)
             for key, sel in selections.items()]
    return jobs, {key: selection_record(sel) for key, sel in selections.items()}


def base_record(item: Item, scores: "LatentScores") -> dict:
    return {"id": item.id, "question": item.example.question, "golds": list(item.example.answers),
            "answer": item.record["prediction"], "prompt_tokens": len(item.prompt_ids),
            "answer_tokens": len(item.answer_ids), "scored_tokens": scores.n_tokens,
            "n_active_last": scores.n_active_last, "target": round(scores.target, 6),
            "n_positive": {"gradsae": int((scores.gradsae > 0).sum()), "baseline": int((scores.activation > 0).sum())}}


def run_perturbation(prepared: Prepared, config: ExperimentConfig, out_dir: Path) -> list[dict]:
    """Every correct example's record, generating only those not already in `out_dir` (resume); in sample order."""
    ks = config.ks

    def process(chunk: list[Item]) -> Iterator[list[dict]]:
        scores = score_items(prepared, chunk, config, token_latents=TOKEN_LATENTS)
        write_token_details(out_dir / TOKENS_FILE, chunk, scores, prepared.model.tokenizer)
        planned = {it.id: perturbation_jobs(it, scores[it.id], ks, bool(config.method.pad_topk), config.method.methods)
                   for it in chunk}
        groups = list(job_groups(chunk, lambda it: planned[it.id][0], config.gen_batch_size))
        outputs = run_job_groups(prepared, [[j for _, jobs in group for j in jobs] for group in groups], config)
        for group, group_outputs in zip(groups, outputs):
            results = iter(group_outputs)
            records = []
            for item, item_jobs in group:
                record = base_record(item, scores[item.id])
                record["selections"] = planned[item.id][1]
                record["outputs"] = {job.setting: next(results) for job in item_jobs}
                records.append(record)
            yield records

    n_jobs = 1 + len(settings(ks, config.method.methods))
    done = run_resumable(out_dir / EXAMPLES_FILE, prepared.correct, config.batch_size,
                         f"perturbing (L{prepared.layer}, {n_jobs} generations each)", process)
    return [done[it.id] for it in prepared.correct]


class PerturbRun(NamedTuple):
    """A finished perturbation: its folder, its records (sample order) and the summary its table shows."""

    out_dir: Path
    records: list[dict]
    summary: dict


def perturb(config: PerturbConfig, model: "LoadedModel | None" = None) -> dict:
    """The perturbation experiment end to end: correct set, scores, edited generations, then the table, CSV,
    plot, summary and manifest in the run's folder (resuming what it holds); returns the summary."""
    return perturb_run(config, model).summary


def perturb_run(config: PerturbConfig, model: "LoadedModel | None" = None) -> PerturbRun:
    """`perturb`, returning the folder and records as well."""
    started = time.perf_counter()
    prepared = prepare(config, model)
    out_dir, manifest = open_run(config, "perturb", prepared)
    manifest.start()
    t0 = time.perf_counter()
    records = run_perturbation(prepared, config, out_dir)
    seconds = time.perf_counter() - t0
    title = f"Perturbation — {config.model.model}, layer {prepared.layer}, SAE {prepared.sae_spec}"
    notes = [f"Correct set: the first {len(records)} correctly answered of {prepared.n_answered} questions "
             f"(seed {config.data.seed}); every setting zeroes the selected latents at every prompt and generated "
             f"token.", *splice_notes(config)]
    stats = {"n_answered": prepared.n_answered, "seconds_total": round(time.perf_counter() - started, 1),
             "seconds_perturb": round(seconds, 1), **prepared.extra, **run_summary(prepared.model)}
    summary = publish(out_dir, manifest, "perturb", title, records, config.ks, stats, notes, config.method.methods,
                      tables=paired_markdown(records, config.ks))
    return PerturbRun(out_dir, records, summary)
