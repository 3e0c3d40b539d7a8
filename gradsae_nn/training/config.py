"""The typed configurations of the SAE scripts (`experiments/train_sae.py`, `write_questions.py`,
`sae_quality.py`); their command lines are generated from them (`cli.parse`), like the experiments'
(`gradsae_nn.config`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import need, option, positive
from ..data.prompts import PROMPTS
from ..errors import OptionError, literal
from ..models import DEFAULT_MODEL
from ..modes import check_mode

Architecture = Literal["standard", "jumprelu"]
WeightDtype = Literal["float16", "bfloat16", "float32"]
CollectDtype = Literal["float32", "bfloat16"]


@dataclass(frozen=True)
class TrainSAEConfig:
    """Train SAEs on one model's residual stream (several layers share one activation pass)."""

    model: str = option(DEFAULT_MODEL, "model to train on")
    layer: tuple[int, ...] | None = option(None, "one or more layers (one activation pass)", required=True)
    corpus: str | None = option(None, "training text: .jsonl(.gz) with 'context'/'text', .txt, or a HF dataset name "
                                      "(online). Never the SQuAD dev set: that is what the experiments evaluate on",
                                required=True)
    questions: str | None = option(None, "questions written about corpus paragraphs (experiments/write_questions.py): "
                                         "a share of the tokens are then whole prompts in the experiments' own "
                                         "template built from them", default_text="none: paragraphs only")
    prompt_share: float = option(0.5, "share of the training tokens from prompts, with --questions")
    prompt: str | None = option(None, "template of those prompts", choices=tuple(sorted(PROMPTS)),
                                default_text="the model's measured best, as in the experiments")
    max_length: int = option(512, "tokens of a paragraph at most (prompts are whole)")
    out: str | None = option(None, "output folder", required=True)
    width: int | None = option(None, "latents", default_text="8 x d_model")
    tokens: int = option(2_000_000, "training tokens")
    plateau: tuple[int, ...] = option((), "also train on the first N tokens of the same activations for each N and "
                                          "record their quality on the prompts sample (where quality stops "
                                          "improving)", default_text="none")
    architecture: Architecture = option("standard", "SAE architecture")
    l1: float = option(5.0, "L1 coefficient (standard)")
    sparsity: float = option(5.0, "L0 coefficient (jumprelu)")
    target_l0: float | None = option(None, "jumprelu: penalise (L0 - target)^2 (Gemma Scope 2's quadratic loss) "
                                           "instead of L0; under Adam the thresholds move ~lr per step, so also give "
                                           "enough steps", default_text="off")
    pre_act_loss: float | None = option(None, "jumprelu: coefficient of the pre-activation loss that revives latents "
                                              "silent for a tenth of training", default_text="off")
    lr: float = option(4e-4, "learning rate")
    batch_size: int = option(4096, "SAE training batch (tokens)")
    eval_tokens: int = option(8_000, "tokens of each quality sample (held-out dev text; the experiments' prompts)")
    dead_tokens: int = option(20_000, "tokens of each quality sample for the dead-latent count")
    dtype: WeightDtype = option("float16", "dtype of the saved weights")
    seed: int = option(0, "training seed")
    center: bool = option(False, "train on mean-centred, rescaled activations and fold both into the weights "
                                 "(needed for residual streams with massive constant dimensions, e.g. gemma-3-270m)")
    collect_dtype: CollectDtype = option("float32", "dtype of the model while it collects the training activations: "
                                                    "bfloat16 is ~2x faster on CPUs with AVX512-BF16 and on GPUs, its "
                                                    "activations ~1% off float32's (README, Training SAEs); thresholds "
                                                    "and quality are always measured in float32")
    activations_cache: str | None = option(None, "folder to keep the collected activations in (fp16, ~1 GB per layer "
                                                 "per 800k tokens); a rerun with the same inputs skips collection",
                                           default_text="none")

    def __post_init__(self) -> None:
        for name in ("layer", "corpus", "out"):
            need(getattr(self, name), name)
        check_mode(self.architecture, Architecture, "architecture")
        check_mode(self.dtype, WeightDtype, "dtype")
        check_mode(self.collect_dtype, CollectDtype, "collect_dtype")
        for name in ("width", "tokens", "batch_size", "max_length", "eval_tokens", "dead_tokens"):
            positive(getattr(self, name), name)
        for n in self.plateau:
            if not 0 < n < self.tokens:
                raise OptionError(f"{{plateau}} token counts must lie between 0 and {{tokens}} ({self.tokens}), got {n}")
        if not 0.0 <= self.prompt_share < 1.0:
            raise OptionError(f"{{prompt_share}} is a share of tokens in [0, 1), got {literal(self.prompt_share)}")
        for name in ("target_l0", "pre_act_loss"):
            if getattr(self, name) is not None and self.architecture != "jumprelu":
                raise OptionError(f"{{{name}}} applies to {{architecture}} jumprelu only; drop it or add "
                                  f"{{architecture}} jumprelu")
        if self.target_l0 is not None and self.target_l0 <= 0:
            raise OptionError(f"{{target_l0}} must be positive, got {literal(self.target_l0)}")


@dataclass(frozen=True)
class WriteQuestionsConfig:
    """Have an instruction model write one question about each of N train paragraphs (for SAE training prompts)."""

    model: str = option(DEFAULT_MODEL, "instruction model that writes the questions")
    paragraphs: str | None = option(None, "train paragraphs, .jsonl(.gz) of {'context': ...} (never the dev set)",
                                    required=True)
    n: int = option(5000, "paragraphs to write a question about (a seeded shuffle of all)")
    seed: int = option(0, "seed of the paragraph order")
    batch_size: int = option(8, "prompts per generate call")
    out: str | None = option(None, "questions file (.jsonl; appended as written, resumes)", required=True)

    def __post_init__(self) -> None:
        need(self.paragraphs, "paragraphs")
        need(self.out, "out")
        positive(self.n, "n")
        positive(self.batch_size, "batch_size")


@dataclass(frozen=True)
class SAEQualityConfig:
    """Measure a shipped or saved SAE on both quality samples (`training.quality`), as its card records it."""

    sae: str | None = option(None, "shipped SAE name (e.g. smollm2-135m-it/L15) or a SAELens folder with a "
                                   "gradsae_card.json", required=True)
    eval_tokens: int = option(8_000, "tokens of each quality sample")
    dead_tokens: int = option(20_000, "tokens of each sample for the dead-latent count")
    update_card: bool = option(False, "record the result in the SAE's gradsae_card.json")

    def __post_init__(self) -> None:
        need(self.sae, "sae")
        positive(self.eval_tokens, "eval_tokens")
        positive(self.dead_tokens, "dead_tokens")


@dataclass(frozen=True)
class SAEContextsConfig:
    """Every latent's top-activating training contexts (`training.contexts`), saved beside the SAE."""

    sae: str | None = option(None, "shipped SAE name (e.g. smollm2-135m-it/L15) or a SAELens folder with a "
                                   "gradsae_card.json", required=True)
    corpus: str = option("../shared/data/squad/squad-train-v1.1.paragraphs.jsonl.gz",
                         "training text: .jsonl(.gz) with 'context'/'text', .txt(.gz), or a dataset name (online)")
    tokens: int = option(100_000, "corpus tokens to scan")
    per_latent: int = option(3, "contexts kept per latent (at most one per paragraph)")

    def __post_init__(self) -> None:
        need(self.sae, "sae")
        positive(self.tokens, "tokens")
        positive(self.per_latent, "per_latent")

