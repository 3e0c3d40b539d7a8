"""The notebook API: a model bundled with its SAE, scoring with strings or token ids, edited generation.

    import gradsae_nn as gs
    lens = gs.load("smollm2-135m-it")                      # the model and its default SAE, layer from the SAE's hook
    att = lens.score("The Eiffel Tower is in the city of", answer=" Paris")   # or answer=None: the greedy answer
    att.show(10)                                           # latent, GradSAE score, mean activation, last-token act.
    lens.generate("The Eiffel Tower is in the city of", zero=att.top_latents(10))

`gs.load(..., remote="http://127.0.0.1:8289")` runs the model on an NDIF server instead: the same calls, the
same code path (`remote.run_traces`); scoring then takes x and ∂T/∂x from the server and scores here
(x-grad), and edits send only the edited latents' rows. Inside your own nnsight traces, `apply_splice` and
`edit_output` do the splice and the edit at `lens.module` (see docs/api.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import torch

from .core.editing import edited_generate
from .core.edits import BatchEdit, EditApplier, LatentEdit, resolve_edit_impl
from .core.generation import extract_answer, greedy_generate
from .core.sae import SparseAutoencoder, load_sae, resolve_sae_spec, sae_layer_for
from .core.scoring import LatentScores, score_examples
from .core.targets import ScoringInput, answer_token_ids
from .errors import OptionError, literal
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .remote import RemoteOptions

if TYPE_CHECKING:
    from rich.table import Table

Prompt = str | Sequence[int]


class LatentRow(NamedTuple):
    """One latent of an `Attribution`: its id, GradSAE score, mean activation over the scored prompt tokens,
    and activation at the last prompt token."""

    latent: int
    gradsae: float
    mean_activation: float
    last_activation: float


@dataclass(frozen=True)
class Attribution:
    """The scores of one prompt and answer.

    prompt_ids, answer_ids: the token ids scored (the target is the answer's log-probability by default);
    answer: the answer's text; scores: every latent's scores (`core.scoring.LatentScores`, `[d_sae]` each).
    """

    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]
    answer: str
    scores: LatentScores

    def top(self, k: int = 10, method: str = "gradsae") -> list[LatentRow]:
        """The `k` highest-ranked latents by `method` ("gradsae", "baseline" or "attribution"; the other
        `modes.Method`s when scored with them), best first."""
        ranking = self.scores.by_method(method)
        order = torch.sort(ranking, descending=True, stable=True).indices[:k].tolist()
        s = self.scores
        return [LatentRow(c, float(s.gradsae[c]), float(s.activation[c]), float(s.activation_last[c])) for c in order]

    def top_latents(self, k: int = 10, method: str = "gradsae") -> list[int]:
        return [row.latent for row in self.top(k, method)]

    def table(self, k: int = 10, method: str = "gradsae") -> "Table":
        """The top `k` latents as a rich table."""
        from rich.table import Table

        table = Table(title=f"top {k} latents by {method} — answer {self.answer!r}")
        for column in ("latent", "GradSAE score", "mean activation", "activation at last token"):
            table.add_column(column, justify="right")
        for row in self.top(k, method):
            table.add_row(str(row.latent), f"{row.gradsae:.4g}", f"{row.mean_activation:.4g}",
                          f"{row.last_activation:.4g}")
        return table

    def show(self, k: int = 10, method: str = "gradsae") -> None:
        from rich.console import Console

        Console().print(self.table(k, method))


@dataclass
class Lens:
    """A model with an SAE bound to one residual-stream layer: what `load` returns.

    model: the nnsight model and what the package knows of it (`model.lm` is the nnsight `LanguageModel`);
    sae: the SAELens SAE; layer: its layer; module: that layer's nnsight envoy (`module.output` is the
    residual stream `[batch, seq, d_model]` inside a trace); splice: "lossless" (default) or "reconstruct".
    """

    model: LoadedModel
    sae: SparseAutoencoder
    layer: int
    sae_spec: str
    splice: str = "lossless"
    max_new_tokens: int = 16

    @property
    def module(self) -> Any:
        return self.model.layer(self.layer)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def ids(self, prompt: Prompt) -> list[int]:
        """Token ids of `prompt`: a string is tokenized as is (with the tokenizer's own special tokens); ids
        pass through."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt)["input_ids"])
        return [int(t) for t in prompt]

    def chat(self, user: str) -> list[int]:
        """Token ids of one user turn in the model's chat template, ready for the assistant's answer."""
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                                  add_generation_prompt=True)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def qa(self, context: str, question: str, template: str | None = None) -> list[int]:
        """Token ids of the experiments' extractive-QA prompt for `question` on `context` (the model's measured
        best template unless `template` names another, see `data.prompts`)."""
        from .data.prompts import get_template, prompt_ids
        from .data.squad import QAExample

        example = QAExample(id="", title="", context=context, question=question, answers=())
        return prompt_ids(self.model, get_template(template, self.model), example)

    def answer(self, prompt: Prompt) -> tuple[int, ...]:
        """The model's own greedy answer to `prompt`: its tokens before the first line break."""
        completion = greedy_generate(self.model, [self.ids(prompt)], self.max_new_tokens)[0]
        return answer_token_ids(completion, self.tokenizer)

    def score(self, prompt: Prompt, answer: Prompt | None = None, target: str = "answer-logprob",
              include_bos: bool = False) -> Attribution:
        """Every latent's GradSAE and activation scores for `prompt` and `answer` (default: the model's own
        greedy answer). Locally the SAE is spliced into the trace; remotely x and ∂T/∂x come back (x-grad)."""
        prompt_ids = self.ids(prompt)
        if answer is None:
            answer_ids = self.answer(prompt_ids)
        elif isinstance(answer, str):
            answer_ids = tuple(self.tokenizer(answer, add_special_tokens=False)["input_ids"])
        else:
            answer_ids = tuple(int(t) for t in answer)
        if not answer_ids:
            raise OptionError("there is no answer to score: the greedy answer starts with a line break; pass "
                              "{answer} (text or token ids)")
        scoring = "trace" if self.model.remote is None else "x-grad"
        (scores,) = score_examples(self.model, self.sae, self.layer, [ScoringInput(tuple(prompt_ids), answer_ids)],
                                   target=target, splice=self.splice, scoring=scoring, include_bos=include_bos)
        return Attribution(tuple(prompt_ids), answer_ids, self.tokenizer.decode(list(answer_ids)), scores)

    def generate(self, prompt: Prompt, zero: Sequence[int] = (), inject: Mapping[int, float] | None = None,
                 max_new_tokens: int | None = None, positions: str = "all") -> str:
        """The greedy answer (first line) with latents `zero` zeroed and `inject` set (latent → value) at the
        layer, at every position (or only the last prompt token: `positions="last"`)."""
        edit = LatentEdit(zero=tuple(int(c) for c in zero),
                          inject=tuple((int(c), float(v)) for c, v in (inject or {}).items()))
        (ids,) = edited_generate(self.model, self.sae, self.layer, [self.ids(prompt)], [edit],
                                 max_new_tokens or self.max_new_tokens, splice=self.splice, positions=positions)
        return extract_answer(self.tokenizer.decode(ids, skip_special_tokens=True))


def load(model: str = DEFAULT_MODEL, sae: str | None = None, layer: int | None = None, device: str = "auto",
         dtype: str = "float32", remote: str | bool | None = None, splice: str = "lossless") -> Lens:
    """A model and an SAE bound to its layer.

    model: an embedded name, a Hugging Face repo id or a local directory; sae: a shipped SAE name, a SAELens
    folder or `release:sae_id` (default: the model's shipped SAE at `layer`, or its default one); layer:
    default the SAE's own (from its hook name). remote: an NDIF URL, or True for nnsight's configured host.
    """
    if remote is not None and not isinstance(remote, (bool, str)):
        raise OptionError(f"{{remote}} is an NDIF URL or True, got {literal(remote)}")
    options = None
    if remote:
        options = RemoteOptions(host=remote if isinstance(remote, str) else None)
    spec = resolve_sae_spec(model, layer, sae)
    loaded = load_model(model, device=device, dtype=dtype, remote=options)
    sae_model = load_sae(spec, loaded, layer)
    return Lens(loaded, sae_model, sae_layer_for(spec, layer, sae_model), spec, splice=splice)


def apply_edit(sae: SparseAutoencoder, x: torch.Tensor, zero: Sequence[int] = (),
               inject: Mapping[int, float] | None = None, splice: str = "lossless", positions: slice = slice(None),
               edit_impl: str = "auto") -> torch.Tensor:
    """`x` `[batch, seq, d_in]` with latents `zero` zeroed and `inject` set at `positions`, every row alike:
    for use inside your own nnsight trace (`module.output = apply_edit(lens.sae, module.output, zero=[...])`)."""
    edit = LatentEdit(zero=tuple(int(c) for c in zero), inject=tuple((int(c), float(v)) for c, v in (inject or {}).items()))
    batch = BatchEdit.build([edit] * x.shape[0], x.device, sae.W_dec.dtype)
    return EditApplier(sae, batch, resolve_edit_impl(sae, edit_impl, splice), splice)(x, positions)
