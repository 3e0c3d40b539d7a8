"""What every experiment does first: load data, model and SAE, and find the correct set.

The correct set is the examples the unedited model answers correctly. It comes from the answer step's
cache (`results/answer/<model>-<prompt>/predictions.jsonl`), which is extended only as far as needed:
questions are answered in the seeded sample order until `n_correct` correct ones are found or `limit`
questions have been answered.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .prompts import PromptTemplate, get_template, prompt_ids
from .qa import AnswerConfig, default_answer_dir, is_correct, run_answers
from .sae import load_sae, resolve_sae_spec, sae_layer_for
from .squad import QAExample, load_squad, select_examples, source_fingerprint, to_examples
from .targets import answer_token_ids

if TYPE_CHECKING:
    from .models import LoadedModel

ANSWER_CHUNK = 64  # questions answered between two looks at the correct count


@dataclass(frozen=True)
class Item:
    """One answered question, ready to score and edit: the question, the answer step's record, and token ids."""

    example: QAExample
    record: dict
    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]

    @property
    def id(self) -> str:
        return self.example.id


@dataclass
class Prepared:
    """Everything an experiment needs before it edits anything.

    correct: the correct set, in sample order (at most `n_correct`).
    answered: every answered question (correct or not) by id: the pool steering partners come from.
    n_answered: how many questions of the sample were answered to find `correct`.
    """

    model: "LoadedModel"
    template: PromptTemplate
    sae: Any
    sae_spec: str
    layer: int
    correct: list[Item]
    answered: dict[str, Item]
    n_answered: int
    answer_config: AnswerConfig
    answer_dir: Path
    extra: dict = field(default_factory=dict)


def make_item(model: "LoadedModel", template: PromptTemplate, example: QAExample, record: dict) -> Item:
    return Item(example, record, tuple(prompt_ids(model, template, example)),
                answer_token_ids(record["completion_ids"], model.tokenizer))


def find_correct(model: "LoadedModel", template: PromptTemplate, examples: list[QAExample], answer_dir: Path,
                 config: AnswerConfig, n_correct: int | None, batch_size: int, correct_f1: float | None
                 ) -> tuple[list[dict], list[dict]]:
    """(correct records up to `n_correct`, all answered records), answering `examples` in order as needed."""
    end = 0
    records: list[dict] = []
    while end < len(examples):
        end = min(len(examples), end + ANSWER_CHUNK) if n_correct is not None else len(examples)
        records, _ = run_answers(model, template, examples[:end], answer_dir, config, batch_size=batch_size,
                                 correct_f1=correct_f1)
        if n_correct is not None and sum(is_correct(r, correct_f1) for r in records) >= n_correct:
            break
    correct = [r for r in records if is_correct(r, correct_f1)][:n_correct]
    if not correct:
        raise UsageError(f"no correctly answered examples in the first {len(records)} questions; raise --limit "
                         f"(or check --model/--prompt)")
    return correct, records


def add_correct_set_args(parser: argparse.ArgumentParser, default_n_correct: int | None) -> None:
    parser.add_argument("--n-correct", type=int, default=default_n_correct,
                        help="stop looking once this many correctly answered examples are found "
                             "(default: %(default)s; 0 = every correct one within --limit)")
    parser.add_argument("--correct-f1", type=float, default=None,
                        help="count an answer correct when F1 >= this (the authors' code used 0.9); default EM = 1")
    parser.add_argument("--max-new-tokens", type=int, default=16,
                        help="greedy tokens per answer, edited or not (default: %(default)s)")


def prepare(args: argparse.Namespace, model: "LoadedModel | None" = None, layer: int | None = None,
            sae_spec: str | None = None) -> Prepared:
    """Data, model (unless given), SAE and correct set from the common options.

    layer / sae_spec override `args.layer` / `args.sae` (the layer sweep passes each shipped layer).
    With `--remote` the model runs on the NDIF server (`args.scoring` defaults to x-grad there).
    """
    from .cli import remote_options
    from .experiment import resolve_scoring
    from .models import load_model

    if args.n_correct is not None and args.n_correct < 0:
        raise UsageError(f"--n-correct must be ≥ 0, got {args.n_correct}")
    resolve_scoring(args)
    examples = select_examples(to_examples(load_squad(args.data)), args.limit, args.seed)
    layer = args.layer if layer is None else layer
    spec = resolve_sae_spec(args.model, layer, sae_spec or args.sae)
    model = model or load_model(args.model, device=args.device, dtype=args.dtype, remote=remote_options(args))
    sae = load_sae(spec, model, layer)
    layer = sae_layer_for(spec, layer, sae)
    template = get_template(getattr(args, "prompt", None), model)
    answer_dir = default_answer_dir(args.model, template.name)
    config = AnswerConfig(model=args.model, prompt=template.name, max_new_tokens=args.max_new_tokens,
                          data=args.data, data_sha256=source_fingerprint(args.data), seed=args.seed, dtype=args.dtype)
    by_id = {ex.id: ex for ex in examples}
    correct, records = find_correct(model, template, examples, answer_dir, config, args.n_correct or None,
                                    args.batch_size, args.correct_f1)
    answered = {r["id"]: make_item(model, template, by_id[r["id"]], r) for r in records}
    # an answer whose first token is a line break has no answer tokens to score; such rows are counted, not used
    usable = [answered[r["id"]] for r in correct if answered[r["id"]].answer_ids]
    if not usable:
        raise UsageError(f"none of the {len(correct)} correctly answered examples has answer tokens before the first "
                         f"line break; raise --limit")
    return Prepared(model=model, template=template, sae=sae, sae_spec=spec, layer=layer, correct=usable,
                    answered=answered, n_answered=len(records), answer_config=config, answer_dir=answer_dir,
                    extra={"correct_without_answer_tokens": len(correct) - len(usable)})
