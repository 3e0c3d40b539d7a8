"""Corpus text for SAE training: a paragraph file (`.jsonl[.gz]` or `.txt`) or a hub dataset, read with every
bad line named (line number, what is wrong, how to fix it) before any model loads."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Iterator

from ..errors import UsageError

_TEXT_SUFFIXES = (".json", ".jsonl", ".gz", ".txt")


def check_corpus(corpus: str) -> None:
    """Refuse a corpus that looks like a file path but is not a file (a hub dataset name is left to `datasets`),
    and read a corpus file through once, so a bad line is named before any model loads."""
    path = Path(corpus).expanduser()
    looks_like_path = corpus.startswith(("/", ".", "~")) or path.suffix in _TEXT_SUFFIXES
    if not path.is_file() and (looks_like_path or "/" not in corpus):
        raise UsageError(f"corpus {corpus!r} not found; pass a .jsonl(.gz)/.txt file or a Hugging Face dataset name")
    if path.is_file() and not any(True for _ in file_texts(path)):
        raise UsageError(f"{path}: holds no paragraphs; pass a .jsonl(.gz) of {{\"context\": ...}} lines or a .txt file")


def file_texts(path: Path) -> Iterator[str]:
    """Paragraphs of a corpus file: `.jsonl[.gz]` lines `{"context": ...}` or `{"text": ...}`, else one per line
    of text (gzip when the name ends in `.gz`). A line that is not UTF-8, not a JSON object or without a text
    field, or a file that is not the gzip it claims to be, raises a one-line `UsageError` naming the line."""
    opener = gzip.open if path.suffix == ".gz" else open
    jsonl = ".jsonl" in path.name
    try:
        with opener(path, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise UsageError(f"{path}: line {n} is not UTF-8 ({exc.reason} at byte {exc.start}); "
                                     f"re-encode the file as UTF-8") from None
                if not line.strip():
                    continue
                if not jsonl:
                    yield line.rstrip("\r\n")
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(f"{path}: line {n} is not JSON ({exc.msg}); each line must be one object "
                                     f"like {{\"context\": \"...\"}}: fix or remove it") from None
                text = record.get("context") or record.get("text") if isinstance(record, dict) else None
                if not isinstance(text, str):
                    what = ("a JSON " + type(record).__name__.replace("dict", "object").replace("list", "array")
                            if not isinstance(record, dict) else "an object without a 'context' or 'text' string")
                    raise UsageError(f"{path}: line {n} is {what}; each line must be one object like "
                                     f"{{\"context\": \"...\"}} (JSON Lines, not one JSON document)")
                yield text
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise UsageError(f"{path}: not a valid gzip file ({exc}); gzip it again, or drop the .gz suffix if it "
                         f"is plain text") from None


def corpus_texts(corpus: str) -> Iterator[str]:
    """Paragraphs of a corpus: a file (`file_texts`) or a Hugging Face dataset name with a `text` column
    (online)."""
    path = Path(corpus).expanduser()
    if path.is_file():
        yield from file_texts(path)
        return
    check_corpus(corpus)
    from datasets import load_dataset

    for row in load_dataset(corpus, split="train", streaming=True):
        yield row["text"]
