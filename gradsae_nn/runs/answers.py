"""The answer step: greedy QA over SQuAD examples, cached in append-only JSONL, resumable.

Later experiments reuse this cache to find the "correct set" (examples the unedited model answers
correctly) instead of generating again.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..config import AnswerRunConfig, RunConfig, result_defaults, result_options
from ..core.generation import answer_stop, extract_answer, greedy_generate
from ..data.metrics import qa_score
from ..data.prompts import PromptTemplate, get_template, prompt_ids
from ..data.squad import QAExample, load_squad, select_examples, source_fingerprint, to_examples
from ..models import load_model
from ..remote import RemoteOptions, run_summary
from ..results.progress import make_progress
from ..results.records import (FolderLock, JsonlAppender, atomic_write_json, check_run_config, check_writable,
                               read_jsonl)
from ..results.report import print_table
from .naming import RESULTS_ROOT, folder

if TYPE_CHECKING:
    from ..models import LoadedModel

PREDICTIONS_FILE = "predictions.jsonl"
# The options a prediction depends on besides model and prompt (the folder is named from their non-default
# values). Not the seed or limit: they choose which questions are answered, not what an answer is, so every
# sample of one configuration shares one cache.
ANSWER_OPTIONS = ("data", "answer_format", "max_new_tokens", "dtype")


@dataclass(frozen=True)
class AnswerKey:
    """Everything that changes a prediction; a cache folder holds predictions of exactly one key.

    answer_format: how the answer is cut from the completion and when generation stops.
    spliced_sae: with `--answer-splice reconstruct`, the SAE (spec and layer, `spec@L`) whose reconstruction
    the model answered with; None for the original model.
    """

    model: str
    prompt: str
    max_new_tokens: int
    data: str
    data_sha256: str
    dtype: str
    answer_format: str = "line"
    spliced_sae: str | None = None

    def record(self) -> dict:
        """The key as `run_config.json` holds it: the fields added later only when set, so caches written
        before them still match."""
        out = asdict(self)
        for name, default in (("answer_format", "line"), ("spliced_sae", None)):
            if out[name] == default:
                del out[name]
        return out


@dataclass(frozen=True)
class AnswerSplice:
    """Answer with the SAE's reconstruction spliced in at `layer` (the authors' correct set)."""

    sae: object
    spec: str
    layer: int

    @property
    def name(self) -> str:
        return f"{self.spec}@L{self.layer}"


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


def answer_dir(config: RunConfig, template: PromptTemplate, splice: AnswerSplice | None = None) -> Path:
    """The answer cache of `config`: `answers` if given, else `results/answer/<model>-<prompt>[-<option>_<value>...]`
    with the non-default `ANSWER_OPTIONS` in the name (`naming.folder`), and the SAE answered with, if any."""
    if config.answers is not None:
        return Path(config.answers).expanduser()
    defaults = result_defaults(RunConfig)
    changed = {name: value for name, value in result_options(config).items()
               if name in ANSWER_OPTIONS and value != defaults.get(name)}
    if splice is not None:
        changed["answer_splice"] = splice.name
    return folder("answer", f"{config.model.model}-{template.name}", changed)


def is_correct(record: dict, correct_f1: float | None = None) -> bool:
    """EM = 1 by default; with `correct_f1`, F1 ≥ that threshold (the authors' code used 0.9)."""
    return record["f1"] >= correct_f1 if correct_f1 is not None else record["em"] == 1.0


def _generate(model: "LoadedModel", prompts: list[list[int]], key: AnswerKey, splice: AnswerSplice | None
              ) -> list[list[int]]:
    stop = answer_stop(key.answer_format)
    if splice is None:
        return greedy_generate(model, prompts, key.max_new_tokens, stop=stop)
    from ..core.editing import edited_generate
    from ..core.edits import LatentEdit

    return edited_generate(model, splice.sae, splice.layer, prompts, [LatentEdit()] * len(prompts), key.max_new_tokens,
                           splice="reconstruct", stop=stop)


def _answer_batches(model: "LoadedModel", template: PromptTemplate, examples: list[QAExample],
                    batch_size: int, key: AnswerKey, splice: AnswerSplice | None) -> Iterator[list[dict]]:
    prompts = {ex.id: prompt_ids(model, template, ex) for ex in examples}
    # Similar lengths in one batch waste less compute on padding; the order does not change predictions.
    ordered = sorted(examples, key=lambda ex: len(prompts[ex.id]))
    for start in range(0, len(ordered), batch_size):
        chunk = ordered[start:start + batch_size]
        completions = _generate(model, [prompts[ex.id] for ex in chunk], key, splice)
        records = []
        for ex, new_ids in zip(chunk, completions):
            raw = model.tokenizer.decode(new_ids, skip_special_tokens=True)
            prediction = extract_answer(raw, key.answer_format)
            em, f1 = qa_score(prediction, ex.answers)
            records.append({"id": ex.id, "question": ex.question, "prediction": prediction, "raw": raw,
                            "golds": list(ex.answers), "em": em, "f1": f1,
                            "prompt_tokens": len(prompts[ex.id]), "completion_ids": new_ids})
        yield records


def run_answers(model: "LoadedModel", template: PromptTemplate, examples: list[QAExample], out_dir: Path,
                key: AnswerKey, batch_size: int = 8, correct_f1: float | None = None,
                option: str = "answers", splice: AnswerSplice | None = None) -> tuple[list[dict], AnswerSummary]:
    """Predictions for `examples` (in their order), generating only those not already in `out_dir` (named by
    the option `option` in refusals); with `splice`, answered with the SAE's reconstruction spliced in."""
    check_run_config(out_dir, key.record(), write=False, option=option)
    path = out_dir / PREDICTIONS_FILE
    done = {r["id"]: r for r in read_jsonl(path)}
    pending = [ex for ex in examples if ex.id not in done]
    start = time.perf_counter()
    if pending:
        # Runs of any sample share this cache: one appends at a time (others wait), then re-reads what it holds.
        with FolderLock(out_dir, option):
            check_run_config(out_dir, key.record(), option=option)
            done = {r["id"]: r for r in read_jsonl(path)}
            pending = [ex for ex in examples if ex.id not in done]
            with JsonlAppender(path) as sink, make_progress() as progress:
                task = progress.add_task(f"answering ({model.name})", total=len(pending))
                for records in _answer_batches(model, template, pending, batch_size, key, splice):
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


def remote_options(config: RunConfig) -> RemoteOptions | None:
    """The `RemoteOptions` of a config's remote part, or None for a local run."""
    remote = config.remote
    return (RemoteOptions(host=remote.ndif_host, verbose=remote.verbose, timeout_s=remote.ndif_timeout,
                          retries=remote.ndif_retries) if remote.remote else None)


def open_model(config: RunConfig) -> "LoadedModel":
    """The config's model, locally or on its NDIF server."""
    return load_model(config.model.model, device=config.model.device, dtype=config.model.dtype,
                      remote=remote_options(config))


def answer_key(config: RunConfig, template: PromptTemplate, splice: AnswerSplice | None = None) -> AnswerKey:
    """What the answer step's predictions depend on, for the cache."""
    data = config.data
    return AnswerKey(model=config.model.model, prompt=template.name, max_new_tokens=data.max_new_tokens,
                     data=data.data, data_sha256=source_fingerprint(data.data), dtype=config.model.dtype,
                     answer_format=data.answer_format, spliced_sae=splice.name if splice else None)


def answer(config: AnswerRunConfig) -> AnswerSummary:
    """The answer step end to end: predictions for the config's questions (resuming the cache), `summary.json`
    beside them, and a one-row table on the console."""
    data = config.data
    option = "answers" if config.answers and not config.out else "out"  # the option that names the cache here
    check_writable(Path(config.out or config.answers or RESULTS_ROOT), option)
    examples = select_examples(to_examples(load_squad(data.data)), data.limit, data.seed)
    started = time.perf_counter()
    model = open_model(config)
    load_seconds = time.perf_counter() - started
    template = get_template(data.prompt, model)
    out_dir = Path(config.out).expanduser() if config.out else answer_dir(config, template)
    key = answer_key(config, template)
    _, summary = run_answers(model, template, examples, out_dir, key, batch_size=config.batch_size,
                             correct_f1=data.correct_f1, option=option)
    atomic_write_json(out_dir / "summary.json", {"config": key.record(), **asdict(summary),
                                                 "model_load_s": round(load_seconds, 2), **run_summary(model)})
    print_table(f"SQuAD v1.1 — {config.model.model}, prompt {template.name}",
                ["examples", "EM", "F1", "correct", "generated now", "examples/s"],
                [[str(summary.n), f"{summary.em:.2f}", f"{summary.f1:.2f}", str(summary.n_correct),
                  str(summary.n_generated), f"{summary.examples_per_s:.2f}"]],
                [f"model loaded in {load_seconds:.1f} s; predictions: {out_dir / PREDICTIONS_FILE}"])
    return summary
