"""Train SAEs for the embedded models with SAELens' `SAETrainer`, fed by our own activation iterator.

The corpus mixes train paragraphs with prompts in the experiments' own template (`corpus`). Activations come
from `collect` (fp16); they leave out what `quality` leaves out: position 0 (an attention sink whose residual
norm, ~22,000 on SmolLM2 vs ~175 elsewhere, would dominate the loss) and massive tokens (norm above 10× the
median). Inputs are scaled to an expected norm of sqrt(d_in) during training
(`normalize_activations="expected_average_only_in"`); SAELens folds that scale into the weights at the
end, so the shipped SAE takes raw residuals and has no run-time normalisation (and stays sliceable).

`center=True` (`--center`) instead trains on `(x − μ)·s`, with μ the activations' mean and `s` making the
mean squared norm d_in, then folds both into the weights (`b_dec += μ`). Needed for residual streams with
massive, nearly constant dimensions (gemma-3-270m): uncentred, the SAE must rebuild that offset with its
latents (a run here: L0 1719 of 5120, EV 0.54, 39% dead), because Adam moves a zero-initialised `b_dec`
by about `lr` per step.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterator

import torch

from ..modes import check_mode
from .config import Architecture

if TYPE_CHECKING:
    from ..core.sae import SparseAutoencoder

@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained SAE (recorded next to its weights)."""

    model: str
    layer: int
    width: int
    architecture: str
    tokens: int
    corpus: str
    corpus_sha256: str
    # prompts in the experiments' template, from questions written about corpus paragraphs (None: text only)
    questions: str | None = None
    questions_sha256: str | None = None
    prompt: str | None = None
    prompt_share: float = 0.0
    max_length: int = 512
    massive_threshold: float | None = None
    batch_size: int = 4096
    lr: float = 4e-4
    l1_coefficient: float = 5.0
    jumprelu_sparsity_coefficient: float = 5.0
    # JumpReLU only: None → DeepMind's step L0 penalty; a number → Gemma Scope 2's quadratic penalty around it
    target_l0: float | None = None
    # JumpReLU only: Anthropic's pre-activation loss on latents that have not fired for a tenth of training
    # (pushes them back over their threshold); None = off
    pre_act_loss: float | None = None
    seed: int = 0
    center: bool = False
    # dtype of the model that produced the activations (the shipped SAEs before 2026-12: float32)
    collect_dtype: str = "float32"


def activation_batches(acts: torch.Tensor, batch_size: int, seed: int, mean: torch.Tensor | None = None,
                       scale: float = 1.0) -> Iterator[torch.Tensor]:
    """Endless fp32 batches `[batch_size, d]` from `acts` (centred and scaled when `mean` is given),
    reshuffled every epoch."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(acts.shape[0], generator=generator)
        for start in range(0, acts.shape[0] - batch_size + 1, batch_size):
            batch = acts[order[start:start + batch_size]].float()
            yield batch if mean is None else (batch - mean) * scale


def train_sae(acts: torch.Tensor, cfg: TrainConfig, hook_name: str) -> "SparseAutoencoder":
    """Train an SAE on `acts` `[n, d_in]` with SAELens and return it as an inference SAE (weights folded)."""
    from sae_lens import SAE
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.jumprelu_sae import (
        JumpReLUTrainingSAE,
        JumpReLUTrainingSAEConfig,
    )
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.saes.standard_sae import (
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
    )
    from sae_lens.training.sae_trainer import SAETrainer

    check_mode(cfg.architecture, Architecture, "architecture")
    torch.manual_seed(cfg.seed)
    metadata = SAEMetadata(model_name=cfg.model, hook_name=hook_name, context_size=cfg.max_length)
    mean, scale = centering(acts) if cfg.center else (None, 1.0)
    common = dict(d_in=acts.shape[1], d_sae=cfg.width, metadata=metadata,
                  normalize_activations="none" if cfg.center else "expected_average_only_in")
    if cfg.architecture == "standard":
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=cfg.l1_coefficient,
                                                            l1_warm_up_steps=_warmup(cfg), **common))
    else:
        sparsity = (dict(jumprelu_sparsity_loss_mode="quadratic", target_l0=cfg.target_l0)
                    if cfg.target_l0 is not None else {})
        sparsity["pre_act_loss_coefficient"] = cfg.pre_act_loss
        sae = JumpReLUTrainingSAE(JumpReLUTrainingSAEConfig(l0_coefficient=cfg.jumprelu_sparsity_coefficient,
                                                            l0_warm_up_steps=_warmup(cfg), **sparsity, **common))
    trainer_cfg = SAETrainerConfig(total_training_samples=cfg.tokens, train_batch_size_samples=cfg.batch_size,
                                   lr=cfg.lr, lr_end=cfg.lr / 10, lr_warm_up_steps=max(1, _warmup(cfg) // 2),
                                   lr_decay_steps=max(1, cfg.tokens // cfg.batch_size // 5),
                                   n_batches_for_norm_estimate=min(100, acts.shape[0] // cfg.batch_size),
                                   dead_feature_window=max(1, min(1000, cfg.tokens // cfg.batch_size // 10)),
                                   device="cpu")
    batches = activation_batches(acts, cfg.batch_size, cfg.seed, mean, scale)
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=batches)
    trained = trainer.fit()
    with tempfile.TemporaryDirectory() as tmp:  # SAELens' own training → inference conversion
        trained.save_inference_model(tmp)
        inference = SAE.load_from_disk(tmp)
    if mean is not None:
        fold_centering(inference, mean, scale)
    return inference.requires_grad_(False)


def centering(acts: torch.Tensor, sample: int = 200_000) -> tuple[torch.Tensor, float]:
    """(μ `[d_in]`, s): the mean of `acts` and the scale that gives `(x − μ)·s` a mean squared norm of d_in."""
    rows = acts[torch.randperm(acts.shape[0], generator=torch.Generator().manual_seed(0))[:sample]].float()
    mean = rows.mean(0)
    scale = (acts.shape[1] / (rows - mean).pow(2).sum(-1).mean()).sqrt()
    return mean, float(scale)


def fold_centering(sae: "SparseAutoencoder", mean: torch.Tensor, scale: float) -> None:
    """Make an SAE trained on `(x − μ)·s` take raw `x`: it encodes `(x − b_dec) W_enc` and decodes
    `h W_dec + b_dec`, so W_enc ← s·W_enc, W_dec ← W_dec / s, b_dec ← b_dec / s + μ (b_enc and thresholds stay)."""
    if not sae.cfg.apply_b_dec_to_input:
        raise ValueError("fold_centering needs an SAE that subtracts b_dec from its input")
    with torch.no_grad():
        sae.W_enc.mul_(scale)
        sae.W_dec.div_(scale)
        sae.b_dec.copy_(sae.b_dec / scale + mean.to(sae.b_dec.dtype))


def _warmup(cfg: TrainConfig) -> int:
    return max(1, cfg.tokens // cfg.batch_size // 20)


def config_record(cfg: TrainConfig) -> dict:
    return asdict(cfg)
