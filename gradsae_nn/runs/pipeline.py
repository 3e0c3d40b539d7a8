"""What every experiment does first: load data, model and SAE, and find the correct set.

The correct set is the examples the unedited model answers correctly. It comes from the answer step's
cache (`answers.answer_dir`), which is extended only as far as needed: questions are answered in the seeded
sample order until `n_correct` correct ones are found or `limit` questions have been answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ExperimentConfig
from ..core.sae import SparseAutoencoder, load_sae, resolve_sae_spec, sae_layer_for
from ..core.targets import answer_token_ids, format_target_ids
from ..data.prompts import PromptTemplate, get_template, prompt_ids
from ..data.squad import QAExample, load_squad, select_examples, to_examples
from ..errors import OptionError
from ..results.records import check_writable
from .answers import AnswerKey, AnswerSplice, answer_dir, answer_key, is_correct, open_model, run_answers
from .naming import RESULTS_ROOT

if TYPE_CHECKING:
    from ..models import LoadedModel

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
    sae: SparseAutoencoder
    sae_spec: str
    layer: int
    correct: list[Item]
    answered: dict[str, Item]
    n_answered: int
    answer_key: AnswerKey
    answer_dir: Path
    extra: dict = field(default_factory=dict)


def scored_answer_ids(model: "LoadedModel", record: dict, target: str = "answer-logprob") -> tuple[int, ...]:
    """The answer tokens the target scores: the completion before its first line break, or for
    `format-token-prob` the completion up to its format token (none if it has no such token: the authors' loop
    never scores it). Empty: the example cannot be scored."""
    completion = record["completion_ids"]
    if target == "format-token-prob":
        return tuple(format_target_ids(completion, model.tokenizer) or ())
    return tuple(answer_token_ids(completion, model.tokenizer))


def make_item(model: "LoadedModel", template: PromptTemplate, example: QAExample, record: dict,
              target: str = "answer-logprob") -> Item:
    """The item of an answered question, with its scored answer tokens (`scored_answer_ids`)."""
    return Item(example, record, tuple(prompt_ids(model, template, example)), scored_answer_ids(model, record, target))


def find_correct(model: "LoadedModel", template: PromptTemplate, examples: list[QAExample], answer_dir: Path,
                 key: AnswerKey, n_correct: int | None, batch_size: int, correct_f1: float | None,
                 splice: AnswerSplice | None = None, target: str = "answer-logprob") -> tuple[list[dict], list[dict], int]:
    """(correct records that can be scored, up to `n_correct`; all answered records; how many correct ones could
    not be scored), answering `examples` in order until `n_correct` scorable ones are found. A correct answer
    whose first token is a line break (or, for the format target, a completion without a format token) has no
    answer tokens to score: it is counted, not used, and not counted towards `n_correct`."""
    end = 0
    records: list[dict] = []
    correct: list[dict] = []
    usable: list[dict] = []
    while end < len(examples):
        end = min(len(examples), end + ANSWER_CHUNK) if n_correct is not None else len(examples)
        records, _ = run_answers(model, template, examples[:end], answer_dir, key, batch_size=batch_size,
                                 correct_f1=correct_f1, splice=splice)
        correct = [r for r in records if is_correct(r, correct_f1)]
        usable = [r for r in correct if scored_answer_ids(model, r, target)]
        if n_correct is not None and len(usable) >= n_correct:
            break
    if not correct:
        raise OptionError(f"no correctly answered examples in the first {len(records)} questions; raise {{limit}} "
                          f"(or check {{model}}/{{prompt}})")
    if not usable:
        what = ("a format token ('[', as in 'Result = [[ label ]]')" if target == "format-token-prob"
                else "answer tokens before the first line break")
        raise OptionError(f"none of the {len(correct)} correctly answered examples has {what}; raise {{limit}}")
    return usable[:n_correct], records, len(correct) - len(usable)


def prepare(config: ExperimentConfig, model: "LoadedModel | None" = None) -> Prepared:
    """Data, model (unless given), SAE and correct set of an experiment's config."""
    data = config.data
    check_writable(Path(config.answers) if config.answers else RESULTS_ROOT, "answers")
    check_writable(Path(config.out) if config.out else RESULTS_ROOT, "out")
    examples = select_examples(to_examples(load_squad(data.data)), data.limit, data.seed)
    spec = resolve_sae_spec(config.model.model, config.method.layer, config.method.sae)
    model = model or open_model(config)
    sae = load_sae(spec, model, config.method.layer)
    layer = sae_layer_for(spec, config.method.layer, sae)
    template = get_template(data.prompt, model)
    splice = AnswerSplice(sae, spec, layer) if config.method.answer_splice == "reconstruct" else None
    cache = answer_dir(config, template, splice)
    key = answer_key(config, template, splice)
    by_id = {ex.id: ex for ex in examples}
    target = config.method.target
    correct, records, unscorable = find_correct(model, template, examples, cache, key, config.n_correct or None,
                                                config.batch_size, data.correct_f1, splice, target)
    answered = {r["id"]: make_item(model, template, by_id[r["id"]], r, target) for r in records}
    usable = [answered[r["id"]] for r in correct]
    return Prepared(model=model, template=template, sae=sae, sae_spec=spec, layer=layer, correct=usable,
                    answered=answered, n_answered=len(records), answer_key=key, answer_dir=cache,
                    extra={"correct_without_answer_tokens": unscorable})


def splice_notes(config: ExperimentConfig) -> list[str]:
    """What a table must say about the model its rows ran on: under `--splice reconstruct` the correct set
    comes from the original model but every row ('w/o task' included) runs on the SAE's reconstruction."""
    if config.method.splice != "reconstruct":
        return []
    if config.method.answer_splice == "reconstruct":
        return ["The correct set was found with the SAE's reconstruction spliced in (--answer-splice reconstruct), "
                "and every row here runs on it (--splice reconstruct), as in the authors' code."]
    return ["The correct set was found on the original model (no SAE); every row here, 'w/o task' included, "
            "runs with the SAE's reconstruction spliced in (--splice reconstruct), so 'w/o task' can be below "
            "100: the reconstructed model answers some of them wrongly."]

