"""Local steering (paper RQ3): make the model answer *another* question on the same context.

For a correct example d and a partner d^t (another question on d's context): zero d's own selected
latents Z(d) and inject d^t's selected latents Z(d^t) with values taken from d^t, at the edit positions;
generate greedily; score against d^t's gold answers. "w/o task" is d's unedited answer scored against d^t's.

Value sources (`--value-source`):
- `mean-activation` (default): h of d^t averaged over its scored prompt tokens (its baseline score);
- `last-activation`: h of d^t at its last prompt token;
- `score`: the latents' own scores under the method, clamped to [0, 50] (what the authors' code injected).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from .errors import UsageError
from .experiment import (GenerationJob, MethodOptions, job_groups, run_job_groups, run_resumable, score_items,
                         select_all, selection_record)
from .metrics import score
from .pipeline import Item, Prepared
from .qa import is_correct
from .selection import Selection
from .splice import LatentEdit

if TYPE_CHECKING:
    from .scoring import LatentScores

VALUE_SOURCES = ("mean-activation", "last-activation", "score")
PARTNER_POOLS = ("correct", "any")
SCORE_CLAMP = (0.0, 50.0)
EXAMPLES_FILE = "examples.jsonl"
UNSTEERED = "none"


def choose_partners(items: Sequence[Item], pool: dict[str, Item], seed: int, which: str = "correct",
                    correct_f1: float | None = None) -> dict[str, str | None]:
    """Each item's partner id: another question on the same context, or None if there is none.

    The choice for an item depends only on (seed, its id, the candidates), never on the order or number of
    other items, so a resumed or extended run picks the same partners. Never the item itself.
    """
    if which not in PARTNER_POOLS:
        raise UsageError(f"unknown --partners {which!r}; use one of {', '.join(PARTNER_POOLS)}")
    by_context: dict[str, list[Item]] = {}
    for candidate in pool.values():
        if candidate.answer_ids and (which == "any" or is_correct(candidate.record, correct_f1)):
            by_context.setdefault(candidate.example.context, []).append(candidate)
    partners: dict[str, str | None] = {}
    for item in items:
        candidates = sorted(c.id for c in by_context.get(item.example.context, []) if c.id != item.id)
        partners[item.id] = random.Random(f"{seed}:{item.id}").choice(candidates) if candidates else None
    return partners


def injection_values(scores: "LatentScores", method: str, source: str) -> torch.Tensor:
    """`[d_sae]` the value each latent of the partner is injected with."""
    if source == "mean-activation":
        return scores.activation
    if source == "last-activation":
        return scores.activation_last
    if source == "score":
        return scores.by_method(method).clamp(*SCORE_CLAMP)
    raise UsageError(f"unknown --value-source {source!r}; use one of {', '.join(VALUE_SOURCES)}")


def steering_edit(own: Selection, target: Selection, values: torch.Tensor) -> LatentEdit:
    return LatentEdit(zero=own.latents, inject=tuple((c, float(values[c])) for c in target.latents))


def steering_jobs(item: Item, partner: Item, own_scores: "LatentScores", partner_scores: "LatentScores",
                  ks: Sequence[str], source: str) -> tuple[list[GenerationJob], dict]:
    own, target = select_all(own_scores, ks), select_all(partner_scores, ks)
    golds = partner.example.answers
    jobs = [GenerationJob(item.id, key, item.prompt_ids,
                          steering_edit(own[key], target[key], injection_values(partner_scores, key.split("/")[0], source)),
                          golds) for key in own]
    selections = {key: {"own": selection_record(own[key]), "injected": selection_record(target[key])} for key in own}
    return jobs, selections


def steering_record(item: Item, mate: Item, selections: dict, outputs: dict) -> dict:
    em, f1 = score(item.record["prediction"], mate.example.answers)
    return {"id": item.id, "question": item.example.question, "partner_id": mate.id,
            "partner_question": mate.example.question, "partner_golds": list(mate.example.answers),
            "answer": item.record["prediction"], "partner_answer": mate.record["prediction"], "selections": selections,
            "outputs": {UNSTEERED: {"prediction": item.record["prediction"], "em": em, "f1": f1}, **outputs}}


def run_steering(prepared: Prepared, options: MethodOptions, ks: Sequence[str], out_dir: Path, seed: int,
                 partners_from: str, source: str, positions: str, correct_f1: float | None) -> tuple[list[dict], int]:
    """(records of every correct example that has a partner, number without a partner); resumes from `out_dir`."""
    if source not in VALUE_SOURCES:  # checked before any work starts
        raise UsageError(f"unknown --value-source {source!r}; use one of {', '.join(VALUE_SOURCES)}")
    partners = choose_partners(prepared.correct, prepared.answered, seed, partners_from, correct_f1)
    steerable = [it for it in prepared.correct if partners[it.id] is not None]

    def process(chunk: list[Item]) -> Iterator[list[dict]]:
        mates = {it.id: prepared.answered[partners[it.id]] for it in chunk}
        needed = {it.id: it for it in [*chunk, *mates.values()]}
        scores = score_items(prepared.model, prepared.sae, list(needed.values()), options)
        planned = {it.id: steering_jobs(it, mates[it.id], scores[it.id], scores[mates[it.id].id], ks, source)
                   for it in chunk}
        groups = list(job_groups(chunk, lambda it: planned[it.id][0], options.gen_batch_size))
        outputs = run_job_groups(prepared.model, prepared.sae,
                                 [[job for _, item_jobs in group for job in item_jobs] for group in groups], options,
                                 positions=positions)
        for group, group_outputs in zip(groups, outputs):
            results = iter(group_outputs)
            yield [steering_record(item, mates[item.id], planned[item.id][1],
                                   {job.setting: next(results) for job in item_jobs}) for item, item_jobs in group]

    done = run_resumable(out_dir / EXAMPLES_FILE, steerable, options.batch_size, f"steering (L{options.layer})", process)
    return [done[it.id] for it in steerable], len(prepared.correct) - len(steerable)
