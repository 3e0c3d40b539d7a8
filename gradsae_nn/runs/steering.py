"""Local steering (paper RQ3): make the model answer *another* question on the same context.

For a correct example d and a partner d^t (another question on d's context): zero d's own selected
latents Z(d) and inject d^t's selected latents Z(d^t) with values taken from d^t, at the edit positions;
generate greedily; score against d^t's gold answers. "w/o task" is d's unedited answer scored against d^t's.
Partners: `runs.partners` (by default one whose answer differs, so "w/o task" is 0). Each output also records
how much of d's own answer survives (`own_em`, `own_f1`) and whether it broke (`broken`: empty or not a span of
the context). The injected values are multiplied by `--value-scale`; `runs.dose` sweeps it, with two controls
(`modes.Variant`).

Value sources (`modes.ValueSource`):
- `mean-activation` (default): h of d^t averaged over its scored prompt tokens (its baseline score);
- `last-activation`: h of d^t at its last prompt token;
- `score`: the latents' own scores under the method, clamped to [0, 50] (what the authors' code injected).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from ..config import SteerConfig
from ..core.edits import LatentEdit
from ..core.selection import UNEDITED, Selection, Setting, settings
from ..core.tokens import TOKEN_LATENTS
from ..data.metrics import normalize_answer, qa_score
from ..data.squad import group_by_context, load_squad, to_examples
from ..errors import OptionError
from ..modes import ValueSource, Variant, check_mode
from ..remote import run_summary
from ..results.report import publish
from ..results.tokens import TOKENS_FILE
from .jobs import (GenerationJob, job_groups, run_job_groups, run_resumable, score_items, select_all, selection_record,
                   write_token_details)
from .outputs import open_run
from .partners import Partners, choose_partners, gold_item
from .pipeline import Item, Prepared, prepare, splice_notes

if TYPE_CHECKING:
    from ..core.scores import LatentScores
    from ..results.manifest import Manifest
    from ..models import LoadedModel

SCORE_CLAMP = (0.0, 50.0)
EXAMPLES_FILE = "examples.jsonl"


@dataclass(frozen=True)
class SteerCell:
    """One steering setting: the table's (method, which, K), the edit `variant` (`modes.Variant`) and the factor
    `scale` on the injected values. Its key in records is the setting's (`"gradsae/top/10"`) when `short` (a run
    with one variant and one scale), else `"gradsae/swap/10/x2"` (TopK only: the dose-response sweep)."""

    method: str
    which: str
    k: str
    variant: str = "swap"
    scale: float = 1.0
    short: bool = False

    @property
    def setting(self) -> Setting:
        return Setting(self.method, self.which, self.k)

    @property
    def key(self) -> str:
        return self.setting.key if self.short else f"{self.method}/{self.variant}/{self.k}/x{self.scale:g}"


def injection_values(scores: "LatentScores", method: str, value_source: str) -> torch.Tensor:
    """`[d_sae]` the value each latent of the partner is injected with."""
    check_mode(value_source, ValueSource, "value_source")
    if value_source == "mean-activation":
        return scores.activation
    if value_source == "last-activation":
        return scores.activation_last
    return scores.by_method(method).clamp(*SCORE_CLAMP)


def random_latents(partner_scores: "LatentScores", n: int, key: str) -> tuple[int, ...]:
    """`n` latents drawn (seeded by `key`) from those active in the partner (mean activation > 0), ascending
    ids first; all of them when fewer are active (the random-latent control)."""
    active = torch.nonzero(partner_scores.activation > 0).flatten().tolist()
    return tuple(random.Random(key).sample(active, min(n, len(active))))


def steering_edit(own: Selection, injected: Selection, values: torch.Tensor, variant: str = "swap",
                  scale: float = 1.0, latents: Sequence[int] | None = None) -> LatentEdit:
    """swap: zero `own`, set `injected`'s latents to `scale ×` their values; inject-only: the same without zeroing;
    random: zero `own`, and give `latents` (random ones) the values `injected`'s latents would get, in order."""
    check_mode(variant, Variant, "variant")
    targets = injected.latents if variant != "random" else tuple(latents or ())
    inject = tuple((c, scale * float(values[source])) for c, source in zip(targets, injected.latents))
    return LatentEdit(zero=() if variant == "inject-only" else own.latents, inject=inject)


def steering_jobs(item: Item, partner: Item, own_scores: "LatentScores", partner_scores: "LatentScores",
                  cells: Sequence[SteerCell], value_source: str, seed: int, pad: bool = False
                  ) -> tuple[list[GenerationJob], dict]:
    """One generation per cell (`SteerCell`), and each cell's selections."""
    ks = list(dict.fromkeys(cell.k for cell in cells))
    methods = list(dict.fromkeys(cell.method for cell in cells))
    own, injected = select_all(own_scores, ks, methods, pad), select_all(partner_scores, ks, methods, pad)
    golds = partner.example.answers
    jobs, selections = [], {}
    for cell in cells:
        base = cell.setting.key
        values = injection_values(partner_scores, cell.method, value_source)
        chosen = (random_latents(partner_scores, len(injected[base].latents), f"{seed}:{item.id}:{cell.key}")
                  if cell.variant == "random" else None)
        edit = steering_edit(own[base], injected[base], values, cell.variant, cell.scale, chosen)
        jobs.append(GenerationJob(item.id, cell.key, item.prompt_ids, edit, golds))
        selections[cell.key] = {"own": selection_record(own[base]), "injected": selection_record(injected[base])}
        if chosen is not None:
            selections[cell.key]["random"] = list(chosen)
    return jobs, selections


def own_answer_scores(output: dict, item: Item) -> dict:
    """`output` plus how much of the example's own answer survives (EM/F1 against its golds) and whether the
    output is broken: empty, or not a span of the context (after SQuAD normalisation)."""
    prediction = output["prediction"]
    own_em, own_f1 = qa_score(prediction, item.example.answers)
    normalized = normalize_answer(prediction)
    broken = not normalized or normalized not in normalize_answer(item.example.context)
    return {**output, "own_em": own_em, "own_f1": own_f1, "broken": float(broken)}


def steering_record(item: Item, partner: Item, selections: dict, outputs: dict) -> dict:
    unedited = own_answer_scores({"prediction": item.record["prediction"]}, item)
    em, f1 = qa_score(item.record["prediction"], partner.example.answers)
    return {"id": item.id, "question": item.example.question, "partner_id": partner.id,
            "partner_question": partner.example.question, "partner_golds": list(partner.example.answers),
            "answer": item.record["prediction"], "partner_answer": partner.record["prediction"],
            "partner_teacher_forced": bool(partner.record.get("teacher_forced")), "selections": selections,
            "outputs": {UNEDITED: {**unedited, "em": em, "f1": f1},
                        **{key: own_answer_scores(out, item) for key, out in outputs.items()}}}


def find_partners(prepared: Prepared, config: SteerConfig) -> Partners:
    """Every correct example's partner (`runs.partners`); refuses a run in which none has one, before anything
    is written."""
    steering = config.steering
    by_context = None
    if steering.partners == "different":
        by_context = group_by_context(to_examples(load_squad(config.data.data)))
    found = choose_partners(prepared.correct, prepared.answered, steering.partner_seed, steering.partners,
                            config.data.correct_f1, by_context,
                            lambda ex: gold_item(prepared.model, prepared.template, ex))
    if not any(found.partner_of.values()):
        what = {"different": "another question on its context with a different answer",
                "correct": "another correctly answered question on its context",
                "any": "another answered question on its context"}[steering.partners]
        fix = {"different": "raise {n_correct}/{limit}", "correct": "raise {n_correct}/{limit} or use {partners} "
               "different", "any": "raise {n_correct}/{limit}"}[steering.partners]
        raise OptionError(f"none of the {len(prepared.correct)} correct examples has {what}; {fix}")
    return found


def run_steering(prepared: Prepared, config: SteerConfig, out_dir: Path, cells: Sequence[SteerCell],
                 partners: Partners) -> list[dict]:
    """Records of every correct example that has a partner, one output per cell; resumes from `out_dir`."""
    steering = config.steering
    steerable = [it for it in prepared.correct if partners.partner_of[it.id] is not None]

    def process(chunk: list[Item]) -> Iterator[list[dict]]:
        partner = {it.id: partners.partner_of[it.id] for it in chunk}
        needed = {it.id: it for it in [*chunk, *partner.values()]}
        scores = score_items(prepared, list(needed.values()), config, token_latents=TOKEN_LATENTS)
        write_token_details(out_dir / TOKENS_FILE, chunk, scores, prepared.model.tokenizer)
        planned = {it.id: steering_jobs(it, partner[it.id], scores[it.id], scores[partner[it.id].id], cells,
                                        steering.value_source, steering.partner_seed, bool(config.method.pad_topk))
                   for it in chunk}
        groups = list(job_groups(chunk, lambda it: planned[it.id][0], config.gen_batch_size))
        outputs = run_job_groups(prepared, [[job for _, item_jobs in group for job in item_jobs] for group in groups],
                                 config, positions=steering.positions)
        for group, group_outputs in zip(groups, outputs):
            results = iter(group_outputs)
            yield [steering_record(item, partner[item.id], planned[item.id][1],
                                   {job.setting: next(results) for job in item_jobs}) for item, item_jobs in group]

    done = run_resumable(out_dir / EXAMPLES_FILE, steerable, config.batch_size, f"steering (L{prepared.layer})", process)
    return [done[it.id] for it in steerable]


def partner_notes(partners: Partners, n_records: int, pool: str) -> list[str]:
    lost = f"{partners.no_other} have no other question on their context"
    if pool == "different":
        lost += f", {partners.filtered} only questions whose answer overlaps theirs"
        how = ("partners: another dev question on the context whose answer differs both ways (F1 = 0), scored on "
               "its first gold answer, teacher-forced")
    else:
        how = f"partners: another {'correctly ' if pool == 'correct' else ''}answered question on the context"
    return [f"{n_records} correct examples with a partner ({lost}); {how}."]


def start_steering(config: SteerConfig, experiment: str, model: "LoadedModel | None" = None
                   ) -> tuple[Prepared, Path, "Manifest", Partners]:
    """Data, model, SAE and correct set; the output folder; the partners (a run without any is refused before
    anything is written); then the manifest is started."""
    prepared = prepare(config, model)
    out_dir, manifest = open_run(config, experiment, prepared)
    partners = find_partners(prepared, config)
    manifest.start()
    return prepared, out_dir, manifest, partners


def steer(config: SteerConfig, model: "LoadedModel | None" = None) -> dict:
    """The steering experiment end to end (see `perturbation.perturb`); returns the summary."""
    started = time.perf_counter()
    prepared, out_dir, manifest, partners = start_steering(config, "steer", model)
    steering = config.steering
    cells = [SteerCell(s.method, s.which, s.k, "swap", steering.value_scale, short=True)
             for s in settings(config.ks, config.method.methods)]
    records = run_steering(prepared, config, out_dir, cells, partners)
    title = (f"Local steering — {config.model.model}, layer {prepared.layer}, SAE {prepared.sae_spec}, values "
             f"{steering.value_source}" + (f" × {steering.value_scale:g}" if steering.value_scale != 1 else "") +
             f", positions {steering.positions}")
    notes = [*partner_notes(partners, len(records), steering.partners),
             f"Scored against the partner's gold answers; from {prepared.n_answered} answered questions.",
             *splice_notes(config)]
    stats = {"n_answered": prepared.n_answered, "n_without_partner": partners.no_other + partners.filtered,
             "n_no_other_question": partners.no_other, "n_filtered_out": partners.filtered,
             "seconds_total": round(time.perf_counter() - started, 1), **prepared.extra, **run_summary(prepared.model)}
    return publish(out_dir, manifest, "steer", title, records, config.ks, stats, notes, config.method.methods)
