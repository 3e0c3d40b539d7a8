"""SQuAD v1.1 through Hugging Face `datasets`: the hub split online, the packaged dev set offline.

Every source becomes a `datasets.Dataset` with the hub's schema
(`id, title, context, question, answers{text, answer_start}`), so the rest of the code has one path.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Iterable

from ..errors import OptionError, UsageError, literal

PACKAGED_DEV = "squad-dev"
HUB_DATASET = "rajpurkar/squad"
DEV_QUESTIONS = 10_570


@dataclass(frozen=True)
class QAExample:
    """One SQuAD question. `answers` holds every gold answer text (duplicates kept, as in the file)."""

    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...]


def packaged_dev_path() -> Path:
    return Path(str(files("gradsae_nn").joinpath("resources/squad/dev-v1.1.json.zip")))


def _features() -> Any:
    from datasets import Features, Sequence, Value

    return Features({
        "id": Value("string"), "title": Value("string"), "context": Value("string"),
        "question": Value("string"),
        "answers": Sequence({"text": Value("string"), "answer_start": Value("int32")}),
    })


def _read_json(path: Path) -> Any:
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.endswith(".json")]
                if not names:
                    raise UsageError(f"{path}: zip holds no .json file; expected a SQuAD v1.1 JSON inside")
                raw = zf.read(names[0])
        else:
            raw = path.read_bytes()
        return json.load(io.BytesIO(raw))
    except zipfile.BadZipFile:
        raise UsageError(f"{path}: not a valid zip file; pass a SQuAD v1.1 .json or .json.zip") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc}); pass a SQuAD v1.1 JSON file") from None


def _flatten(path: Path, doc: Any) -> list[dict]:
    """SQuAD's nested articles → flat hub-schema rows, validating the structure as we go: every context and
    question a string, every question with a gold answer, every id once (a duplicate would merge two
    questions' records)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise UsageError(f"{path}: not SQuAD v1.1 JSON: expected a top-level object with a 'data' list of "
                         f"articles")
    rows: list[dict] = []
    seen: set[str] = set()
    unanswered: list[str] = []
    for a, article in enumerate(doc["data"]):
        try:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    qid, answers = str(qa["id"]), qa["answers"]
                    for name, value in (("context", context), ("question", qa["question"])):
                        if not isinstance(value, str) or not value.strip():
                            raise UsageError(f"{path}: question {qid} (article {a}) has {name} "
                                             f"{literal(value)}; every {name} must be non-empty text: fix or "
                                             f"remove that question")
                    if qid in seen:
                        raise UsageError(f"{path}: question id {qid} appears twice; ids must be unique (their "
                                         f"records would merge): renumber or remove the duplicate")
                    seen.add(qid)
                    if not answers:
                        unanswered.append(qid)
                        continue
                    rows.append({
                        "id": qid, "title": article.get("title", ""), "context": context,
                        "question": qa["question"],
                        "answers": {"text": [x["text"] for x in answers],
                                    "answer_start": [int(x["answer_start"]) for x in answers]},
                    })
        except (KeyError, TypeError) as exc:
            raise UsageError(f"{path}: not SQuAD v1.1 JSON: article {a} lacks the field {exc} (each article "
                             f"needs paragraphs[].context and paragraphs[].qas[].id/question/answers)") from None
    if unanswered:
        raise UsageError(f"{path}: {len(unanswered)} of {len(seen)} questions have no gold answer (first: "
                         f"{unanswered[0]}), so they cannot be scored; SQuAD v2's unanswerable questions are not "
                         f"supported: remove them")
    if not rows:
        raise UsageError(f"{path}: holds no questions")
    return rows


def load_squad(source: str = PACKAGED_DEV) -> Any:
    """SQuAD v1.1 as a `datasets.Dataset` (hub schema).

    source: `squad-dev` (the packaged official dev set; works offline), `rajpurkar/squad` (hub validation
        split; needs the hub), or a path to any SQuAD-v1.1-format `.json` / `.json.zip`.
    """
    from datasets import Dataset, load_dataset

    if source == HUB_DATASET:
        try:
            return load_dataset(HUB_DATASET, split="validation")
        except OSError as exc:  # ConnectionError offline
            raise OptionError(f"cannot load {HUB_DATASET} from the Hugging Face hub ({type(exc).__name__}); "
                              f"offline, use {{data}} {PACKAGED_DEV} (the same dev set, shipped in the package)"
                              ) from None
    path = packaged_dev_path() if source == PACKAGED_DEV else Path(source).expanduser()
    if not path.is_file():
        raise OptionError(f"data file {literal(source)} not found; pass {{data}} {PACKAGED_DEV}, {HUB_DATASET} or "
                          f"the path of a SQuAD v1.1 JSON file")
    dataset = Dataset.from_list(_flatten(path, _read_json(path)), features=_features())
    if source == PACKAGED_DEV and len(dataset) != DEV_QUESTIONS:
        raise RuntimeError(f"packaged SQuAD dev set has {len(dataset)} questions, expected {DEV_QUESTIONS}")
    return dataset


def source_fingerprint(source: str) -> str:
    """sha256 of the data file (or the hub id itself), for manifests and cache keys."""
    if source == HUB_DATASET:
        return HUB_DATASET
    path = packaged_dev_path() if source == PACKAGED_DEV else Path(source).expanduser()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def to_examples(dataset: Iterable[dict]) -> list[QAExample]:
    return [QAExample(id=r["id"], title=r["title"], context=r["context"], question=r["question"],
                      answers=tuple(r["answers"]["text"])) for r in dataset]


def select_examples(examples: list[QAExample], limit: int | None, seed: int) -> list[QAExample]:
    """A reproducible sample that keeps questions on the same context together.

    Contexts are shuffled with `seed` and their questions taken in file order until `limit` questions.
    A larger `limit` with the same seed extends the smaller sample (so cached predictions stay valid),
    and steering can always find sibling questions on the same context.
    """
    groups = group_by_context(examples)
    order = list(groups)
    random.Random(seed).shuffle(order)
    picked = [ex for context in order for ex in groups[context]]
    return picked if limit is None else picked[:limit]


def group_by_context(examples: Iterable[QAExample]) -> dict[str, list[QAExample]]:
    """context text → its questions, both in first-seen order."""
    groups: dict[str, list[QAExample]] = {}
    for ex in examples:
        groups.setdefault(ex.context, []).append(ex)
    return groups
