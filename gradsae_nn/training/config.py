"""The typed configurations of the SAE scripts (`experiments/train_sae.py`, `experiments/sae_dead_latents.py`);
their command lines are generated from them (`cli.parse`), like the experiments' (`gradsae_nn.config`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import need, option
from ..errors import OptionError, literal
from ..models import DEFAULT_MODEL
from ..modes import check_mode

Architecture = Literal["standard", "jumprelu"]
WeightDtype = Literal["float16", "bfloat16", "float32"]


@dataclass(frozen=True)
class TrainSAEConfig:
    """Train SAEs on one model's residual stream (several layers share one activation pass)."""

    model: str = option(DEFAULT_MODEL, "model to train on")
    layer: tuple[int, ...] | None = option(None, "one or more layers (one activation pass)", required=True)
    corpus: str | None = option(None, "training text: .jsonl(.gz) with 'context'/'text', .txt, or a HF dataset name "
                                      "(online). Never the SQuAD dev set: that is what the experiments evaluate on",
                                required=True)
    out: str | None = option(None, "output folder", required=True)
    width: int | None = option(None, "latents", default_text="8 x d_model")
    tokens: int = option(2_000_000, "training tokens")
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
    context_size: int = option(128, "tokens per training window")
    eval_tokens: int = option(20_000, "held-out SQuAD dev tokens for the quality metrics")
    dtype: WeightDtype = option("float16", "dtype of the saved weights")
    seed: int = option(0, "training seed")
    center: bool = option(False, "train on mean-centred, rescaled activations and fold both into the weights "
                                 "(needed for residual streams with massive constant dimensions, e.g. gemma-3-270m)")
    activations_cache: str | None = option(None, "folder to keep the collected activations in (fp16, ~1 GB per layer "
                                                 "per 800k tokens); a rerun with the same model/layer/tokens/corpus "
                                                 "skips collection", default_text="none")

    def __post_init__(self) -> None:
        for name in ("layer", "corpus", "out"):
            need(getattr(self, name), name)
        check_mode(self.architecture, Architecture, "architecture")
        check_mode(self.dtype, WeightDtype, "dtype")
        for name in ("width", "tokens", "batch_size", "context_size", "eval_tokens"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise OptionError(f"{{{name}}} must be a positive whole number, got {literal(value)}")
        for name in ("target_l0", "pre_act_loss"):
            if getattr(self, name) is not None and self.architecture != "jumprelu":
                raise OptionError(f"{{{name}}} applies to {{architecture}} jumprelu only; drop it or add "
                                  f"{{architecture}} jumprelu")
        if self.target_l0 is not None and self.target_l0 <= 0:
            raise OptionError(f"{{target_l0}} must be positive, got {literal(self.target_l0)}")


@dataclass(frozen=True)
class DeadLatentsConfig:
    """Count a shipped SAE's dead latents on more held-out tokens than its card's full evaluation."""

    sae: str | None = option(None, "shipped SAE name, e.g. gemma3-270m/L9", required=True)
    tokens: int = option(20_000, "held-out SQuAD dev tokens to look at")
    update_card: bool = option(False, "record the result in the SAE's gradsae_card.json")

    def __post_init__(self) -> None:
        need(self.sae, "sae")
        if self.tokens <= 0:
            raise OptionError(f"{{tokens}} must be a positive whole number, got {self.tokens}")
