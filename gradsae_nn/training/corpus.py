"""The SAE training corpus: SQuAD train paragraphs, mixed with prompts in the experiments' own templates.

The experiments run on few-shot or chat prompts (instruction, demonstrations, a context, a question, the
answer); SAEs trained on bare paragraphs explain under half their variance there. So a share of the
training tokens (`prompt_share`, of tokens) are whole prompts built exactly as the experiments build them
(`data.prompts`), from *train* paragraphs and questions an instruction model wrote about them
(`write_questions`; never a dev question), each followed by a short span of its paragraph as the answer.
The rest are whole train paragraphs (BOS where the family uses one), at most `max_length` tokens.

Every prompt of one template starts with the same tokens (instruction and demonstrations: ~60% of a
prompt), whose activations are identical from prompt to prompt; they are kept in one prompt of every
`PREFIX_EVERY` (position 0 is never kept, see `collect.collect_activations`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

from ..core.generation import common_prefix_len, extract_answer, greedy_generate
from ..data.prompts import SHOTS, PromptTemplate, prompt_ids
from ..data.squad import QAExample
from ..errors import UsageError
from ..results.progress import make_progress
from ..results.records import JsonlAppender, read_jsonl
from .texts import file_texts

if TYPE_CHECKING:
    from ..models import LoadedModel

QUESTION_INSTRUCTION = "Write one short question that the text answers with a few words."
PREFIX_EVERY = 10


@dataclass(frozen=True)
class TrainSequence:
    """Token ids to collect activations from, keeping positions `start` and later (start ≥ 1)."""

    ids: tuple[int, ...]
    start: int = 1


def read_paragraphs(path: str | Path) -> list[str]:
    """The text of every line of a paragraph file (`train.file_texts`: `.jsonl[.gz]` or `.txt`), in order."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"paragraph file {path} not found; pass the SQuAD train paragraphs "
                         f"(../shared/data/squad/squad-train-v1.1.paragraphs.jsonl.gz)")
    return list(file_texts(path))


def question_order(n_paragraphs: int, seed: int) -> list[int]:
    """The paragraphs questions are written for, in order: a seeded shuffle of every index."""
    order = list(range(n_paragraphs))
    random.Random(seed).shuffle(order)
    return order


def _question(text: str) -> str | None:
    """The first line up to its first question mark, or None if it asks nothing."""
    line = extract_answer(text)
    return line[: line.index("?") + 1].strip() if "?" in line else None


def question_prompt(tokenizer: object, context: str) -> list[int]:
    """The chat prompt asking for a question about `context`, with the hand-written demonstrations of
    `data.prompts.SHOTS` (never SQuAD text) as earlier turns."""
    messages = []
    for shot in SHOTS:
        messages += [{"role": "user", "content": f"{QUESTION_INSTRUCTION}\n\nText: {shot.context}"},
                     {"role": "assistant", "content": shot.question}]
    messages.append({"role": "user", "content": f"{QUESTION_INSTRUCTION}\n\nText: {context}"})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def write_questions(model: "LoadedModel", paragraphs: Sequence[str], out: Path, n: int, seed: int = 0,
                    batch_size: int = 8, max_new_tokens: int = 40) -> list[dict]:
    """Questions the (instruction) model writes about `n` train paragraphs, appended to `out` as they are
    written (`{"paragraph": index, "question": text or null}`; resumes). Returns the usable ones."""
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise UsageError(f"{model.name} has no chat template; write the questions with an instruction model")
    wanted = question_order(len(paragraphs), seed)[:n]
    done = {r["paragraph"]: r for r in read_jsonl(out)}
    pending = [i for i in wanted if i not in done]
    if pending:
        with JsonlAppender(out) as sink, make_progress() as progress:
            task = progress.add_task(f"writing questions ({model.name})", total=len(pending))
            for start in range(0, len(pending), batch_size):
                chunk = pending[start:start + batch_size]
                prompts = [question_prompt(tokenizer, paragraphs[i]) for i in chunk]
                outs = greedy_generate(model, prompts, max_new_tokens)
                records = [{"paragraph": i, "question": _question(tokenizer.decode(o, skip_special_tokens=True))}
                           for i, o in zip(chunk, outs)]
                sink.write(records)
                done.update((r["paragraph"], r) for r in records)
                progress.advance(task, len(records))
    return [done[i] for i in wanted if done[i]["question"]]


def answer_span(context: str, rng: random.Random) -> str:
    """A short span of `context` (1–4 words, trailing punctuation dropped), like a SQuAD answer."""
    words = context.split()
    length = rng.randint(1, 4)
    start = rng.randrange(max(1, len(words) - length))
    return " ".join(words[start:start + length]).strip(".,;:!?\"'()")


def prompt_sequences(model: "LoadedModel", template: PromptTemplate, paragraphs: Sequence[str],
                     questions: Sequence[dict], seed: int = 0) -> Iterator[TrainSequence]:
    """The experiments' prompt for each written question, with an answer span appended; the shared prefix
    (instruction and demonstrations) kept in one of every `PREFIX_EVERY`."""
    rng = random.Random(seed)
    prefix = None
    for n, record in enumerate(questions):
        context = paragraphs[record["paragraph"]]
        example = QAExample(id=str(record["paragraph"]), title="", context=context, question=record["question"],
                            answers=())
        ids = prompt_ids(model, template, example)
        answer = answer_span(context, rng)
        ids += model.tokenizer((" " if template.style == "few-shot" else "") + answer, add_special_tokens=False)[
            "input_ids"]
        if prefix is None:
            other = QAExample(id="", title="", context="A different context.", question="Why?", answers=())
            prefix = common_prefix_len([ids, prompt_ids(model, template, other)])
        yield TrainSequence(tuple(ids), 1 if n % PREFIX_EVERY == 0 else max(1, prefix))


def text_sequences(model: "LoadedModel", paragraphs: Sequence[str], max_length: int) -> Iterator[TrainSequence]:
    """Each paragraph whole (BOS first where the family needs one), cut at `max_length` tokens."""
    tokenizer = model.tokenizer
    bos = [tokenizer.bos_token_id] if model.family.needs_bos and tokenizer.bos_token_id is not None else []
    for text in paragraphs:
        ids = (bos + tokenizer(text, add_special_tokens=False)["input_ids"])[:max_length]
        if len(ids) > 1:
            yield TrainSequence(tuple(ids))


def mixed(prompts: Iterator[TrainSequence], texts: Iterator[TrainSequence], prompt_share: float) -> Iterator[TrainSequence]:
    """Prompts and texts interleaved so that prompts make `prompt_share` of the kept tokens (until one runs out,
    then the other alone)."""
    kept = {"prompt": 0, "text": 0}
    sources = {"prompt": prompts, "text": texts}
    while sources:
        total = kept["prompt"] + kept["text"]
        kind = "prompt" if "prompt" in sources and (kept["prompt"] <= prompt_share * total or "text" not in sources) \
            else "text"
        item = next(sources[kind], None)
        if item is None:
            del sources[kind]
            continue
        kept[kind] += len(item.ids) - item.start
        yield item
