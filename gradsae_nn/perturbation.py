"""Perturbation (paper RQ1/RQ2): zero an example's TopK or BottomK latents at every token, regenerate greedily.

For each correct example: score it (GradSAE and the activation baseline), select TopK/BottomK for each K,
and generate once per setting with those latents zeroed at every prompt and generated position, plus
once unedited ("none", which must reproduce the correct answer). EM/F1 against the gold answers.

Records (`examples.jsonl`, one line per finished example, append-only): id, question, golds, the answer
step's prediction, token counts, every setting's selection (latents best-first with scores) and output.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from .experiment import (GenerationJob, MethodOptions, job_groups, run_job_groups, run_resumable, score_items,
                         select_all, selection_record, settings)
from .pipeline import Item, Prepared
from .splice import LatentEdit

if TYPE_CHECKING:
    from .scoring import LatentScores

EXAMPLES_FILE = "examples.jsonl"
UNEDITED = "none"


def perturbation_jobs(item: Item, scores: "LatentScores", ks: Sequence[str]) -> tuple[list[GenerationJob], dict]:
    """The unedited job plus one zeroing job per setting; also the selections, as records."""
    selections = select_all(scores, ks)
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


def run_perturbation(prepared: Prepared, options: MethodOptions, ks: Sequence[str], out_dir: Path) -> list[dict]:
    """Every correct example's record, generating only those not already in `out_dir` (resume); in sample order."""

    def process(chunk: list[Item]) -> Iterator[list[dict]]:
        scores = score_items(prepared.model, prepared.sae, chunk, options)
        planned = {it.id: perturbation_jobs(it, scores[it.id], ks) for it in chunk}
        groups = list(job_groups(chunk, lambda it: planned[it.id][0], options.gen_batch_size))
        outputs = run_job_groups(prepared.model, prepared.sae, [[j for _, jobs in group for j in jobs] for group in groups],
                                 options)
        for group, group_outputs in zip(groups, outputs):
            results = iter(group_outputs)
            records = []
            for item, item_jobs in group:
                record = base_record(item, scores[item.id])
                record["selections"] = planned[item.id][1]
                record["outputs"] = {job.setting: next(results) for job in item_jobs}
                records.append(record)
            yield records

    n_jobs = 1 + len(settings(ks))
    done = run_resumable(out_dir / EXAMPLES_FILE, prepared.correct, options.batch_size,
                         f"perturbing (L{options.layer}, {n_jobs} generations each)", process)
    return [done[it.id] for it in prepared.correct]
