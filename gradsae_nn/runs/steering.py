"""Local steering (paper RQ3): make the model answer *another* question on the same context.

For a correct example d and a partner d^t (another question on d's context): zero d's own selected
latents Z(d) and inject d^t's selected latents Z(d^t) with values taken from d^t, at the edit positions;
generate greedily; score against d^t's gold answers. "w/o task" is d's unedited answer scored against d^t's.

Value sources (`modes.ValueSource`):
- `mean-activation` (default): h of d^t averaged over its scored prompt tokens (its baseline score);
- `last-activation`: h of d^t at its last prompt token;
- `score`: the latents' own scores under the method, clamped to [0, 50] (what the authors' code injected).
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from ..config import SteerConfig
from ..core.edits import LatentEdit
from ..core.selection import UNEDITED, Selection, Setting
from ..data.metrics import qa_score
from ..errors import OptionError
from ..modes import PartnerPool, ValueSource, check_mode
from ..remote import run_summary
from ..results.report import publish
from .answers import is_correct
from .jobs import GenerationJob, job_groups, run_job_groups, run_resumable, score_items, select_all, selection_record
from .outputs import open_run
from .pipeline import Item, Prepared, prepare, splice_notes

if TYPE_CHECKING:
    from ..core.scoring import LatentScores
    from ..models import LoadedModel

SCORE_CLAMP = (0.0, 50.0)
EXAMPLES_FILE = "examples.jsonl"


def choose_partners(items: Sequence[Item], answered: dict[str, Item], seed: int, partners: str = "correct",
                    correct_f1: float | None = None) -> dict[str, str | None]:
    """Each item's partner id: another question on the same context, or None if there is none.

    The choice for an item depends only on (seed, its id, the candidates), never on the order or number of
    other items, so a resumed or extended run picks the same partners. Never the item itself.
    """
    check_mode(partners, PartnerPool, "partners")
    by_context: dict[str, list[Item]] = {}
    for candidate in answered.values():
        if candidate.answer_ids and (partners == "any" or is_correct(candidate.record, correct_f1)):
            by_context.setdefault(candidate.example.context, []).append(candidate)
    chosen: dict[str, str | None] = {}
    for item in items:
        candidates = sorted(c.id for c in by_context.get(item.example.context, []) if c.id != item.id)
        chosen[item.id] = random.Random(f"{seed}:{item.id}").choice(candidates) if candidates else None
    return chosen


def injection_values(scores: "LatentScores", method: str, value_source: str) -> torch.Tensor:
    """`[d_sae]` the value each latent of the partner is injected with."""
    check_mode(value_source, ValueSource, "value_source")
    if value_source == "mean-activation":
        return scores.activation
    if value_source == "last-activation":
        return scores.activation_last
    return scores.by_method(method).clamp(*SCORE_CLAMP)


def steering_edit(own: Selection, injected: Selection, values: torch.Tensor) -> LatentEdit:
    return LatentEdit(zero=own.latents, inject=tuple((c, float(values[c])) for c in injected.latents))


def steering_jobs(item: Item, partner: Item, own_scores: "LatentScores", partner_scores: "LatentScores",
                  ks: Sequence[str], value_source: str, pad: bool = False) -> tuple[list[GenerationJob], dict]:
    own, injected = select_all(own_scores, ks, pad=pad), select_all(partner_scores, ks, pad=pad)
    golds = partner.example.answers
    jobs = [GenerationJob(item.id, key, item.prompt_ids,
                          steering_edit(own[key], injected[key],
                                        injection_values(partner_scores, Setting.parse(key).method, value_source)),
                          golds) for key in own]
    selections = {key: {"own": selection_record(own[key]), "injected": selection_record(injected[key])} for key in own}
    return jobs, selections


def steering_record(item: Item, partner: Item, selections: dict, outputs: dict) -> dict:
    em, f1 = qa_score(item.record["prediction"], partner.example.answers)
    return {"id": item.id, "question": item.example.question, "partner_id": partner.id,
            "partner_question": partner.example.question, "partner_golds": list(partner.example.answers),
            "answer": item.record["prediction"], "partner_answer": partner.record["prediction"],
            "selections": selections,
            "outputs": {UNEDITED: {"prediction": item.record["prediction"], "em": em, "f1": f1}, **outputs}}


def steerable_items(prepared: Prepared, config: SteerConfig) -> tuple[list[Item], dict[str, str | None]]:
    """(the correct examples that have a partner, each correct example's partner id or None); refuses a run in
    which none has one, before anything is written."""
    steering = config.steering
    partner_of = choose_partners(prepared.correct, prepared.answered, steering.partner_seed, steering.partners,
                                 config.data.correct_f1)
    steerable = [it for it in prepared.correct if partner_of[it.id] is not None]
    if not steerable:
        fix = "raise {n_correct}/{limit}" + (" or use {partners} any" if steering.partners == "correct" else "")
        raise OptionError(f"none of the {len(prepared.correct)} correct examples has another "
                          f"{'correct ' if steering.partners == 'correct' else ''}question on its context; {fix}")
    return steerable, partner_of


def run_steering(prepared: Prepared, config: SteerConfig, out_dir: Path) -> tuple[list[dict], int]:
    """(records of every correct example that has a partner, number without a partner); resumes from `out_dir`."""
    steering, ks = config.steering, config.ks
    steerable, partner_of = steerable_items(prepared, config)

    def process(chunk: list[Item]) -> Iterator[list[dict]]:
        partners = {it.id: prepared.answered[partner_of[it.id]] for it in chunk}
        needed = {it.id: it for it in [*chunk, *partners.values()]}
        scores = score_items(prepared, list(needed.values()), config)
        planned = {it.id: steering_jobs(it, partners[it.id], scores[it.id], scores[partners[it.id].id], ks,
                                        steering.value_source, bool(config.method.pad_topk)) for it in chunk}
        groups = list(job_groups(chunk, lambda it: planned[it.id][0], config.gen_batch_size))
        outputs = run_job_groups(prepared, [[job for _, item_jobs in group for job in item_jobs] for group in groups],
                                 config, positions=steering.positions)
        for group, group_outputs in zip(groups, outputs):
            results = iter(group_outputs)
            yield [steering_record(item, partners[item.id], planned[item.id][1],
                                   {job.setting: next(results) for job in item_jobs}) for item, item_jobs in group]

    done = run_resumable(out_dir / EXAMPLES_FILE, steerable, config.batch_size, f"steering (L{prepared.layer})", process)
    return [done[it.id] for it in steerable], len(prepared.correct) - len(steerable)


def steer(config: SteerConfig, model: "LoadedModel | None" = None) -> dict:
    """The steering experiment end to end (see `perturbation.perturb`); returns the summary."""
    started = time.perf_counter()
    prepared = prepare(config, model)
    out_dir, manifest = open_run(config, "steer", prepared)
    steering = config.steering
    steerable_items(prepared, config)  # refuses before anything is written
    manifest.start()
    records, n_alone = run_steering(prepared, config, out_dir)
    title = (f"Local steering — {config.model.model}, layer {prepared.layer}, SAE {prepared.sae_spec}, values "
             f"{steering.value_source}, positions {steering.positions}")
    notes = [f"{len(records)} correct examples with a partner ({n_alone} without one, left out), from "
             f"{prepared.n_answered} answered questions; scored against the partner's gold answers.",
             *splice_notes(config)]
    stats = {"n_answered": prepared.n_answered, "n_without_partner": n_alone,
             "seconds_total": round(time.perf_counter() - started, 1), **prepared.extra, **run_summary(prepared.model)}
    return publish(out_dir, manifest, "steer", title, records, config.ks, stats, notes)
