"""Steering partners: which other question on the same context an example is steered towards, and the
answer Y the partner's latents are scored on.

Pools (`modes.PartnerPool`):

- `different` (the default): every other dev question on the example's context, answered or not, whose
  answer differs from the example's both ways: the model's answer to d scores F1 = 0 against the partner's
  gold answers, and the partner's first gold answer scores F1 = 0 against d's gold answers. So "w/o task" is 0
  by construction, as in the paper. The partner's Y is its **first gold answer, teacher-forced** after its
  prompt (as the model's own completions begin: `gold_answer_ids`), whether or not the model answered it.
  A pool of unanswered questions needs a Y that does not come from the model, and using the gold for every
  partner keeps the choice independent of which questions a run happened to answer.
- `correct`: another correctly answered question on the context; Y = the model's own answer (the former
  default, kept for comparison: there the unsteered answer often already matches the partner's gold).
- `any`: another answered question on the context; Y = the model's answer.

The choice for an example depends only on (seed, its id, the candidates), never on the order or number of
other examples, so a resumed or extended run picks the same partners. Never the example itself.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Callable, NamedTuple, Sequence

from ..data.metrics import qa_score
from ..data.prompts import PromptTemplate, prompt_ids
from ..data.squad import QAExample
from ..modes import PartnerPool, check_mode
from .answers import is_correct
from .pipeline import Item

if TYPE_CHECKING:
    from ..models import LoadedModel


class Partners(NamedTuple):
    """partner_of: each example's partner (None when it has none); no_other: examples whose context has no
    other candidate at all; filtered: examples that had candidates, all with an overlapping answer (`different`)."""

    partner_of: dict[str, Item | None]
    no_other: int
    filtered: int


def gold_answer_ids(model: "LoadedModel", template: PromptTemplate, example: QAExample) -> tuple[int, ...]:
    """The tokens of `example`'s first gold answer as a completion of its prompt: after a prompt that ends in
    white space (a chat template's open assistant turn) the answer follows directly, otherwise after one space
    ("Answer: Paris"), tokenized together with the prompt text so that merges across the join are kept."""
    tokenizer, answer = model.tokenizer, example.answers[0]
    text = template.text(example, tokenizer)
    joined = text + ("" if text[-1:].isspace() else " ") + answer
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(joined, add_special_tokens=False)["input_ids"]
    if ids[:len(prompt)] == prompt:
        return tuple(ids[len(prompt):])
    return tuple(tokenizer(joined[len(text):], add_special_tokens=False)["input_ids"])


def gold_item(model: "LoadedModel", template: PromptTemplate, example: QAExample) -> Item:
    """A partner scored on its first gold answer, teacher-forced (`different` pool)."""
    record = {"id": example.id, "prediction": example.answers[0], "teacher_forced": True}
    return Item(example, record, tuple(prompt_ids(model, template, example)),
                gold_answer_ids(model, template, example))


def _pick(seed: int, item_id: str, candidates: Sequence[str]) -> str | None:
    return random.Random(f"{seed}:{item_id}").choice(sorted(candidates)) if candidates else None


def differs(prediction: str, own_golds: Sequence[str], partner: QAExample) -> bool:
    """The `different` pool's test: d's answer shares no token with the partner's golds, nor the partner's
    first gold with d's golds (SQuAD F1 = 0 both ways)."""
    return qa_score(prediction, partner.answers).f1 == 0 and qa_score(partner.answers[0], own_golds).f1 == 0


def choose_partners(items: Sequence[Item], answered: dict[str, Item], seed: int, pool: str = "different",
                    correct_f1: float | None = None, by_context: dict[str, list[QAExample]] | None = None,
                    make_gold: Callable[[QAExample], Item] | None = None) -> Partners:
    """Each item's partner (see the module docstring).

    answered: every answered question by id (the `correct`/`any` pools); by_context: every dev question by
    context (the `different` pool); make_gold: `QAExample → Item` for a `different` partner.
    """
    check_mode(pool, PartnerPool, "partners")
    chosen: dict[str, Item | None] = {}
    no_other = filtered = 0
    if pool == "different":
        assert by_context is not None and make_gold is not None
        for item in items:
            others = [e for e in by_context.get(item.example.context, []) if e.id != item.id]
            eligible = {e.id: e for e in others if differs(item.record["prediction"], item.example.answers, e)}
            pick = _pick(seed, item.id, list(eligible))
            chosen[item.id] = make_gold(eligible[pick]) if pick else None
            no_other += not others
            filtered += bool(others) and not eligible
        return Partners(chosen, no_other, filtered)
    candidates: dict[str, list[Item]] = {}
    for candidate in answered.values():
        if candidate.answer_ids and (pool == "any" or is_correct(candidate.record, correct_f1)):
            candidates.setdefault(candidate.example.context, []).append(candidate)
    for item in items:
        ids = [c.id for c in candidates.get(item.example.context, []) if c.id != item.id]
        pick = _pick(seed, item.id, ids)
        chosen[item.id] = answered[pick] if pick else None
        no_other += not ids
    return Partners(chosen, no_other, 0)
