"""Building blocks shared by the experiments: batched scoring, every setting's selection, batched edited
generation, and the resumable loop over examples.

Each example runs every `Setting` of the table, and the generations of several settings (and examples) share
one `generate` call: they are independent rows of one left-padded batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..config import ExperimentConfig
from ..core.editing import plan_generation, run_generations
from ..core.edits import LatentEdit
from ..core.generation import answer_stop, extract_answer
from ..core.scoring import LatentScores, score_batches
from ..core.selection import Selection, select, settings
from ..core.targets import ScoringInput
from ..data.metrics import qa_score
from ..modes import METHODS
from ..results.progress import make_progress
from ..results.records import JsonlAppender, read_jsonl
from ..results.tokens import token_record
from .pipeline import Item, Prepared


def score_items(prepared: Prepared, items: Sequence[Item], config: ExperimentConfig, token_latents: int = 0
                ) -> dict[str, LatentScores]:
    """GradSAE and activation scores of each item (one forward + backward per `batch_size` items), by id;
    `token_latents`: keep each item's per-token detail of that many top latents per method (`core.tokens`).

    Remotely every batch goes in one request."""
    ordered = sorted(items, key=lambda it: len(it.prompt_ids) + len(it.answer_ids))  # less padding per batch
    chunks = [ordered[start:start + config.batch_size] for start in range(0, len(ordered), config.batch_size)]
    method = config.method
    scores = score_batches(prepared.model, prepared.sae, prepared.layer,
                           [[ScoringInput(it.prompt_ids, it.answer_ids) for it in chunk] for chunk in chunks],
                           target=method.target, splice=method.splice, scoring=method.scoring,
                           include_bos=method.include_bos, scored_positions=method.scored_positions,
                           methods=method.methods, ig_steps=method.ig_steps, exact_candidates=method.exact_candidates,
                           token_latents=token_latents, checkpoint=method.checkpoint)
    return {it.id: s for chunk, chunk_scores in zip(chunks, scores) for it, s in zip(chunk, chunk_scores)}


def write_token_details(path: Path, items: Sequence[Item], scores: dict[str, LatentScores], tokenizer: Any) -> None:
    """Append each item's `tokens.jsonl` line (`results.tokens`), fsync'd, before its generations run."""
    with JsonlAppender(path) as sink:
        sink.write([token_record(it.id, [tokenizer.decode([t]) for t in it.prompt_ids], scores[it.id])
                    for it in items if scores[it.id].tokens is not None])


def select_all(scores: LatentScores, ks: Sequence[str], methods: Sequence[str] = METHODS, pad: bool = False
               ) -> dict[str, Selection]:
    """The selection of every setting of one example, by setting key (`pad`: `selection.select`'s padded TopK)."""
    return {s.key: select(scores.by_method(s.method), s.k, s.which, scores.n_active_last, pad)
            for s in settings(ks, methods)}


def selection_record(selection: Selection) -> dict:
    return {"latents": list(selection.latents), "scores": [round(s, 6) for s in selection.scores],
            "k_wanted": selection.k_wanted, "truncated": selection.truncated}


@dataclass(frozen=True)
class GenerationJob:
    """One greedy generation: `prompt_ids` with `edit` applied; `golds` are what its answer is scored against."""

    item_id: str
    setting: str
    prompt_ids: tuple[int, ...]
    edit: LatentEdit
    golds: tuple[str, ...]


def run_job_groups(prepared: Prepared, groups: Sequence[Sequence[GenerationJob]], config: ExperimentConfig,
                   positions: str = "all") -> Iterator[list[dict]]:
    """Each group's results (`{"prediction", "em", "f1"}` per job, in order), yielded group by group; the same
    generate batches (of `gen_batch_size` rows) either way.

    Locally each group is yielded as soon as it is generated (an interrupt loses one group). Remotely all
    groups go in one request (one round trip per chunk of examples) and are yielded when it returns.
    """
    if prepared.model.remote is None:
        for group in groups:
            yield _run_groups(prepared, [group], config, positions)[0]
    else:
        yield from _run_groups(prepared, groups, config, positions)


def _run_groups(prepared: Prepared, groups: Sequence[Sequence[GenerationJob]], config: ExperimentConfig,
                positions: str) -> list[list[dict]]:
    """Each group's results; every group's generate batches run through one `run_generations` call."""
    model, method, rows = prepared.model, config.method, config.gen_batch_size
    chunks = [(g, group[start:start + rows]) for g, group in enumerate(groups) for start in range(0, len(group), rows)]
    plans = [plan_generation(model, prepared.sae, [j.prompt_ids for j in chunk], [j.edit for j in chunk],
                             config.data.max_new_tokens, splice=method.splice, positions=positions,
                             edit_impl=method.edit_impl, stop=answer_stop(config.data.answer_format))
             for _, chunk in chunks]
    n_jobs = sum(len(group) for group in groups)
    results: list[list[dict]] = [[] for _ in groups]
    for (g, chunk), completions in zip(chunks, run_generations(model, prepared.layer, plans, f"{n_jobs} generations")):
        for job, ids in zip(chunk, completions):
            prediction = extract_answer(model.tokenizer.decode(ids, skip_special_tokens=True), config.data.answer_format)
            em, f1 = qa_score(prediction, job.golds)
            results[g].append({"prediction": prediction, "em": em, "f1": f1})
    return results


def run_resumable(path: Path, items: Sequence[Item], chunk_size: int, description: str,
                  process: Callable[[list[Item]], Iterable[list[dict]]]) -> dict[str, dict]:
    """Records by id for `items`, computing only those missing from the JSONL file `path` (resume).

    Pending items go to `process` `chunk_size` at a time, in `items` order (so an interrupted run has
    finished a prefix, plus part of one chunk), shortest prompt first within a chunk (less padding); it
    yields lists of finished records (each with an "id"), which are appended and fsync'd at once, so an
    interrupt loses only the work in flight.
    """
    done = {r["id"]: r for r in read_jsonl(path)}
    pending = [it for it in items if it.id not in done]
    if pending:
        with JsonlAppender(path) as sink, make_progress() as progress:
            task = progress.add_task(description, total=len(pending))
            for start in range(0, len(pending), chunk_size):
                chunk = sorted(pending[start:start + chunk_size], key=lambda it: len(it.prompt_ids))
                for records in process(chunk):
                    sink.write(records)
                    done.update((r["id"], r) for r in records)
                    progress.advance(task, len(records))
    return done


def job_groups(items: Iterable[Item], jobs_of: Callable[[Item], list[GenerationJob]], rows: int
               ) -> Iterator[list[tuple[Item, list[GenerationJob]]]]:
    """Items with their jobs, grouped so that one group fills about `rows` generation rows.

    A group holds whole items, so after a group every one of its items is finished and can be written.
    """
    group: list[tuple[Item, list[GenerationJob]]] = []
    n = 0
    for item in items:
        jobs = jobs_of(item)
        if group and n + len(jobs) > rows:
            yield group
            group, n = [], 0
        group.append((item, jobs))
        n += len(jobs)
    if group:
        yield group
