"""Shipped SAEs keep their recorded quality, and the quality measure itself (massive tokens, cut forwards,
the cheap dead-latent count) against its full evaluation."""

import json

import pytest
import torch

from gradsae_nn.core.sae import hook_layer, load_sae, shipped_sae_names, shipped_sae_root
from gradsae_nn.models import DEFAULT_MODEL

SHIPPED = shipped_sae_names()
SHIPPED_MODELS = {name.split("/")[0] for name in SHIPPED}


def test_embedded_models_have_shipped_saes():
    """SmolLM2 and the Qwen 0.5B at ~25/50/75% depth (the layer sweep); every default SAE is shipped."""
    from gradsae_nn.core.sae import DEFAULT_SAE_LAYER

    assert {"smollm2-135m-it/L6", "smollm2-135m-it/L15", "smollm2-135m-it/L22"} <= set(SHIPPED)
    assert {f"qwen2.5-coder-0.5b-it/L{layer}" for layer in (6, 12, 18)} <= set(SHIPPED)
    assert {f"{model}/L{layer}" for model, layer in DEFAULT_SAE_LAYER.items() if model in SHIPPED_MODELS} <= set(SHIPPED)


CURRENT = [name for name in SHIPPED if name.split("/")[1][1:].isdigit()]


def is_model_default(name: str) -> bool:
    """Whether `name` ("model/L<layer>") is its model's default SAE."""
    from gradsae_nn.core.sae import DEFAULT_SAE_LAYER

    model_name, layer_dir = name.split("/")
    return int(layer_dir[1:]) == DEFAULT_SAE_LAYER.get(model_name)


# "full": both samples and CE recovered; "cut": the prompts sample with the forward cut at the layer (a swapped or
# damaged file moves EV and L0 as surely as CE). The package default's SAE gets the full check; the other models'
# default SAEs get the cut check, and the full one under `extended` (about 2 minutes between them); the rest the cut.
PACKAGE_DEFAULT = [name for name in CURRENT if is_model_default(name) and name.startswith(DEFAULT_MODEL + "/")]
QUALITY_CASES = [(name, "cut") for name in CURRENT if name not in PACKAGE_DEFAULT] + [
    pytest.param(name, "full", marks=[] if name in PACKAGE_DEFAULT else [pytest.mark.extended])
    for name in CURRENT if is_model_default(name)]


@pytest.mark.slow
@pytest.mark.parametrize("name, check", QUALITY_CASES)
def test_shipped_sae_loads_and_keeps_its_quality(name, check, request):
    """Recompute the card's check sample (the first 2,000 tokens of each sample); a broken or swapped weight file
    fails here, and so would a sample on which a single token decides the explained variance."""
    from gradsae_nn.training.quality import CHECK_TOKENS, SAMPLES, evaluate_sae, quality_sample

    model_name, layer_dir = name.split("/")
    from conftest import MODEL_FIXTURES

    model = request.getfixturevalue(MODEL_FIXTURES[model_name])
    layer = int(layer_dir[1:])
    sae = load_sae(name, model, layer)
    assert sae.cfg.d_in == model.d_model and hook_layer(sae) == layer and sae.W_dec.dtype == torch.float32
    card = json.loads((shipped_sae_root() / name / "gradsae_card.json").read_text())
    # The full check: both samples, with CE loss recovered on the experiments' prompts (three full forward
    # passes); the cut one: the prompts only, with the forward cut at the layer, at a fraction of the cost.
    full = check == "full"
    for sample in SAMPLES if full else ("prompts",):
        recorded = card["quality"][sample]["check"]
        sequences = quality_sample(model, sample, CHECK_TOKENS)        # as `measure` chose the check sample
        losses = full and sample == "prompts"
        quality = evaluate_sae(model, sae, layer, sequences, sample, recorded["massive_threshold"], losses=losses)
        # A regression check on recorded aggregates, not a rounding comparison: another CPU moves x by ~1e-4
        # relative (tests/tolerance.py), which moves these statistics over thousands of tokens by < 1e-3, while a
        # swapped or damaged weight file moves EV and CE recovered by > 0.05 and L0 by > 10%.
        assert (quality.n_tokens, quality.n_massive) == (recorded["n_tokens"], recorded["n_massive"])
        assert quality.explained_variance == pytest.approx(recorded["explained_variance"], abs=0.005)
        assert quality.l0 == pytest.approx(recorded["l0"], rel=0.01)
        if losses:
            assert quality.ce_loss_recovered == pytest.approx(recorded["ce_loss_recovered"], abs=0.01)
        # no single token can swing this sample's EV: one massive token moved the old card's EV from 0.589 to
        # 0.963 (test_one_massive_token_swings_an_unguarded_sample). On a 2k-token check sample an ordinary
        # token with a large error moves EV by up to ~0.01 (gemma's dev-text check: 0.0104), so the guard is
        # 0.02, still 18x below the failure it catches.
        assert quality.max_token_influence <= 0.02, (sample, quality.max_token_influence)
        assert card["quality"][sample]["max_token_influence"] <= 0.02


@pytest.mark.slow
def test_one_massive_token_swings_an_unguarded_sample(smollm):
    """The old card's sample (the first dev tokens in 128-token windows, position 0 left out) measured without
    leaving massive tokens out: one token decides EV, and `max_token_influence` shows it."""
    from gradsae_nn.data.squad import group_by_context, load_squad, to_examples
    from gradsae_nn.training.quality import evaluate_sae

    sae = load_sae("smollm2-135m-it/L15-paragraphs", smollm, 15)
    windows, total = [], 0
    for context in group_by_context(to_examples(load_squad())):
        ids = smollm.tokenizer(context, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), 128):
            if total < 4351 and len(ids[start:start + 128]) > 1:
                windows.append(ids[start:start + 128])
                total += len(windows[-1]) - 1
    # EV and the guard need no losses: the forward stops at the layer (test_losses_off_keeps_the_rest)
    unguarded = evaluate_sae(smollm, sae, 15, windows, "old card sample", threshold=float("inf"), losses=False)
    guarded = evaluate_sae(smollm, sae, 15, windows, "old card sample", losses=False)
    assert unguarded.n_massive == 0 and guarded.n_massive >= 1
    assert unguarded.max_token_influence > 0.1 > guarded.max_token_influence
    assert unguarded.explained_variance - guarded.explained_variance > 0.1


@pytest.mark.slow
def test_losses_off_keeps_the_rest(smollm):
    """`losses=False` cuts the forward at the layer: the same reconstruction statistics, CE and KL NaN."""
    import math

    from gradsae_nn.training.quality import evaluate_sae, quality_sample

    sae = load_sae("smollm2-135m-it/L15", smollm, 15)
    sequences = quality_sample(smollm, "prompts", 300)
    full = evaluate_sae(smollm, sae, 15, sequences, "prompts")
    cut = evaluate_sae(smollm, sae, 15, sequences, "prompts", losses=False)
    assert math.isfinite(full.ce_loss_recovered) and math.isfinite(full.kl)
    assert all(math.isnan(v) for v in (cut.ce_clean, cut.ce_sae, cut.ce_zero, cut.ce_loss_recovered, cut.kl))
    assert (cut.n_tokens, cut.n_first, cut.n_massive, cut.massive_threshold) == (
        full.n_tokens, full.n_first, full.n_massive, full.massive_threshold)
    # other batches (no logit budget without losses): residuals differ by rounding only, ~1e-4 relative across
    # kernels (tests/tolerance.py), far below these aggregates' 1e-3
    assert cut.explained_variance == pytest.approx(full.explained_variance, abs=1e-3)
    assert cut.l0 == pytest.approx(full.l0, rel=1e-3)
    assert cut.max_token_influence == pytest.approx(full.max_token_influence, abs=1e-3)


@pytest.mark.slow
def test_dead_fraction_agrees_with_full_evaluation(smollm):
    """The cheap dead-latent count (forward cut at the layer) sees the same tokens as the full evaluation."""
    from gradsae_nn.training.quality import dead_fraction, evaluate_sae, massive_threshold, quality_sample
    from tolerance import dot_bound, network_rtol

    sae = load_sae("smollm2-135m-it/L15", smollm, 15)
    sequences = quality_sample(smollm, "dev-text", 300)
    threshold = massive_threshold(smollm, 15, sequences)
    full = evaluate_sae(smollm, sae, 15, sequences, "dev-text", threshold)
    assert 0.05 < full.dead_fraction < 0.95          # a sample small enough for the count to mean something
    cheap, counted = dead_fraction(smollm, sae, 15, sequences, threshold)
    assert counted == full.n_tokens
    # The two see the same tokens in other batches, so x differs by up to two forward passes' rounding; a latent
    # can count differently only if its largest pre-activation on the sample lies within what that moves it by.
    from gradsae_nn.training.quality import residual_states

    x = residual_states(smollm, 15, sequences, threshold)
    centred = x - sae.b_dec
    pre = centred @ sae.W_enc + sae.b_enc
    moved = network_rtol(smollm.config) * (x.abs() @ sae.W_enc.abs()) \
        + 2 * dot_bound(centred.abs() @ sae.W_enc.abs() + sae.b_enc.abs(), 577)
    borderline = int(((pre.abs() <= moved).any(0) & ~(pre > moved).any(0)).sum())
    assert abs(cheap - full.dead_fraction) * sae.cfg.d_sae <= borderline, borderline
