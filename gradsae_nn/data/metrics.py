"""The official SQuAD v1.1 metrics: exact match and token F1, max over gold answers.

Normalisation follows the official evaluation script: lowercase, drop punctuation, drop the articles
a/an/the, collapse whitespace (in that order).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Iterable, NamedTuple

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


class QAScore(NamedTuple):
    """EM and F1 of one prediction, each in [0, 1], max over the gold answers."""

    em: float
    f1: float


def qa_score(prediction: str, golds: Iterable[str]) -> QAScore:
    golds = list(golds)
    if not golds:
        raise ValueError("qa_score() needs at least one gold answer")
    return QAScore(em=max(exact_match(prediction, g) for g in golds),
                   f1=max(f1(prediction, g) for g in golds))
