"""The answer step: greedy QA over SQuAD examples, cached in append-only JSONL, resumable.

Later experiments reuse this cache to find the "correct set" (examples the unedited model answers
correctly) instead of generating again.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .generation import extract_answer, greedy_generate
from .metrics import score
from .progress import make_progress
from .prompts import PromptTemplate, prompt_ids
from .records import JsonlAppender, check_run_config, read_jsonl
from .squad import QAExample

if TYPE_CHECKING:
    from .models import LoadedModel

PREDICTIONS_FILE = "predictions.jsonl"


@dataclass(frozen=True)
class AnswerConfig:
    """Everything that changes a prediction; a cache folder holds predictions of exactly one config."""

    model: str
    prompt: str
    max_new_tokens: int
    data: str
    data_sha256: str
    seed: int
    dtype: str


@dataclass(frozen=True)
class AnswerSummary:
    """EM/F1 in percent over `n` examples; `examples_per_s` over the examples generated in this run."""

    n: int
    em: float
    f1: float
    n_correct: int
    n_generated: int
    seconds: float
    examples_per_s: float


def default_answer_dir(model_name: str, prompt_name: str, root: Path = Path("results")) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name.strip("/"))
    return root / "answer" / f"{safe}-{prompt_name}"


def is_correct(record: dict, correct_f1: float | None = None) -> bool:
    """EM = 1 by default; with `correct_f1`, F1 ≥ that threshold (the authors' code used 0.9)."""
    return record["f1"] >= correct_f1 if correct_f1 is not None else record["em"] == 1.0


def _answer_batches(model: "LoadedModel", template: PromptTemplate, examples: list[QAExample],
                    batch_size: int, max_new_tokens: int) -> Iterator[list[dict]]:
    prompts = {ex.id: prompt_ids(model, template, ex) for ex in examples}
    # Similar lengths in one batch waste less compute on padding; the order does not change predictions.
    ordered = sorted(examples, key=lambda ex: len(prompts[ex.id]))
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start:start + batch_size]
        completions = greedy_generate(model, [prompts[ex.id] for ex in chunk], max_new_tokens)
        records = []
        for ex, new_ids in zip(chunk, completions):
            raw = model.tokenizer.decode(new_ids, skip_special_tokens=True)
            prediction = extract_answer(raw)
            em, f1 = score(prediction, ex.answers)
            records.append({"id": ex.id, "question": ex.question, "prediction": prediction, "raw": raw,
                            "golds": list(ex.answers), "em": em, "f1": f1,
                            "prompt_tokens": len(prompts[ex.id]), "completion_ids": new_ids})
        yield records


def run_answers(model: "LoadedModel", template: PromptTemplate, examples: list[QAExample], out_dir: Path,
                config: AnswerConfig, batch_size: int = 8,
                correct_f1: float | None = None) -> tuple[list[dict], AnswerSummary]:
    """Predictions for `examples` (in their order), generating only those not already in `out_dir`."""
    check_run_config(out_dir, asdict(config))
    path = out_dir / PREDICTIONS_FILE
    done = {r["id"]: r for r in read_jsonl(path)}
    pending = [ex for ex in examples if ex.id not in done]
    start = time.perf_counter()
    if pending:
        with JsonlAppender(path) as sink, make_progress() as progress:
            task = progress.add_task(f"answering ({model.name})", total=len(pending))
            for records in _answer_batches(model, template, pending, batch_size, config.max_new_tokens):
                sink.write(records)
                done.update((r["id"], r) for r in records)
                progress.advance(task, len(records))
    seconds = time.perf_counter() - start
    records = [done[ex.id] for ex in examples]
    summary = AnswerSummary(
        n=len(records),
        em=100 * statistics.fmean(r["em"] for r in records),
        f1=100 * statistics.fmean(r["f1"] for r in records),
        n_correct=sum(is_correct(r, correct_f1) for r in records),
        n_generated=len(pending), seconds=seconds,
        examples_per_s=len(pending) / seconds if pending and seconds > 0 else 0.0,
    )
    return records, summary
