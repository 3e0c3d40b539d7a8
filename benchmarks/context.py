"""What every row needs: model, SAE, layer, and SQuAD examples with the model's own greedy answers."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import torch

from gradsae_nn.core.generation import greedy_generate
from gradsae_nn.models import LoadedModel, load_model
from gradsae_nn.data.prompts import get_template, prompt_ids
from gradsae_nn.core.sae import load_sae, resolve_sae_spec, sae_layer_for
from gradsae_nn.core.scoring import LatentScores, score_examples
from gradsae_nn.core.selection import select
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.data.squad import load_squad, to_examples
from gradsae_nn.core.targets import ScoringInput, answer_token_ids

N_EDITED = 20  # latents zeroed by the edits of the generation rows (the example's GradSAE top 20)


@dataclass
class Context:
    """Shared state of a suite run.

    inputs: the first `n` SQuAD dev questions as (prompt, answer) token ids; the answer is the model's own
        greedy answer (the target GradSAE differentiates), or the first gold answer when the model answers
        with an empty line.
    scores: each input's GradSAE scores; edits: each input's edit zeroing its GradSAE top 20.
    """

    model: LoadedModel
    sae: Any
    sae_spec: str
    layer: int
    inputs: list[ScoringInput]
    questions: list[str]
    scores: list[LatentScores]
    edits: list[LatentEdit]
    gen_tokens: int
    repeats: int

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def hf(self) -> Any:
        """The underlying transformers model (plain PyTorch baselines call it directly)."""
        return self.model.lm._module

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def random_sae(d_in: int, d_sae: int, layer: int) -> Any:
    """A ReLU SAE with random weights (timings do not depend on training), for models without a shipped SAE."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae,
                                        metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post")))
    with torch.no_grad():
        sae.b_enc.fill_(-2.0)
    return sae.requires_grad_(False)


def build_context(args: argparse.Namespace, n_examples: int) -> Context:
    """Load everything from the suite's options (`--model --device --layer --sae --gen-tokens --repeats`)."""
    model = load_model(args.model, device=args.device)
    if args.sae == "random":
        if args.layer is None:
            raise SystemExit("--sae random needs --layer")
        spec, layer = "random", args.layer
        sae = random_sae(model.d_model, 8 * model.d_model, layer).to(model.device)
    else:
        spec = resolve_sae_spec(args.model, args.layer, args.sae)
        sae = load_sae(spec, model, args.layer)
        layer = sae_layer_for(spec, args.layer, sae)
    examples = to_examples(load_squad().select(range(n_examples)))
    template = get_template(None, model)
    prompts = [tuple(prompt_ids(model, template, ex)) for ex in examples]
    completions = greedy_generate(model, prompts, 16)
    inputs = []
    for ex, prompt, completion in zip(examples, prompts, completions):
        answer = answer_token_ids(completion, model.tokenizer)
        if not answer:
            answer = tuple(model.tokenizer(" " + ex.answers[0], add_special_tokens=False)["input_ids"])
        inputs.append(ScoringInput(prompt, answer))
    scores = score_examples(model, sae, layer, inputs)
    edits = [LatentEdit(zero=select(s.gradsae, N_EDITED, "top", s.n_active_last).latents) for s in scores]
    return Context(model=model, sae=sae, sae_spec=spec, layer=layer, inputs=inputs,
                   questions=[ex.question for ex in examples], scores=scores, edits=edits,
                   gen_tokens=args.gen_tokens, repeats=args.repeats)
