"""The ranking methods beyond GradSAE (`core.integrated`, `core.exact`, `core.methods`) against plain PyTorch:
attribution against the reference's unclamped Σ_n ∂T/∂h·h, integrated gradients by completeness, exact
ablation against a per-latent hook loop."""

from __future__ import annotations

import pytest
import torch

from gradsae_nn.core.exact import candidate_latents, exact_effects
from gradsae_nn.core.generation import pad_id
from gradsae_nn.core.integrated import gauss_legendre, integrated_gradients
from gradsae_nn.core.sae import load_sae
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.targets import ScoringInput, build_batch
from reference import reference_ablated_target, reference_scores
from tolerance import log_prob_tol, network_rtol

LAYER = 15
PROMPTS = ["The capital of France is Paris. The capital of Italy is", "Water boils at one hundred degrees"]
ANSWERS = [" Rome", " Celsius at sea level"]


@pytest.fixture(scope="module")
def sae(smollm):
    return load_sae("smollm2-135m-it/L15", smollm, LAYER)


@pytest.fixture(scope="module")
def inputs(smollm):
    tok = smollm.tokenizer
    return [ScoringInput(tuple(tok(p)["input_ids"]), tuple(tok(a, add_special_tokens=False)["input_ids"]))
            for p, a in zip(PROMPTS, ANSWERS)]


@pytest.fixture(scope="module")
def scored(smollm, sae, inputs):
    return score_examples(smollm, sae, LAYER, inputs, methods=("integrated-gradients", "exact"), ig_steps=8,
                          exact_candidates=6)


def test_gauss_legendre_integrates_polynomials_exactly():
    nodes, weights = gauss_legendre(4)
    assert sum(weights) == pytest.approx(1.0, abs=1e-14)
    for degree in range(8):  # exact up to degree 2m − 1 = 7
        assert sum(w * a ** degree for a, w in zip(nodes, weights)) == pytest.approx(1 / (degree + 1), rel=1e-12)


def test_attribution_equals_plain_autograd(smollm, sae, inputs, scored):
    """The unclamped sum from the same pass equals the reference's Σ_n ∂T/∂h·h (one forward and backward)."""
    for ex, got in zip(inputs, scored):
        ref = reference_scores(smollm.lm._module, sae, LAYER, ex.prompt_ids, ex.answer_ids)
        error = float((got.attribution - ref.attribution).norm() / ref.attribution.norm())
        assert error <= network_rtol(smollm.config, passes=2), error
        assert (got.attribution < 0).any() and (got.attribution > 0).any()   # signed: no clamp


def test_integrated_gradients_are_complete(smollm, sae, inputs, scored):
    """Σ_c IG_c = T(h) − T(h = 0 at the scored positions) within 1e-3 relative, once the quadrature resolves the
    path. Zeroing every latent at every prompt position is a violent path: on these two examples the sum at
    m = 8 / 16 / 32 / 64 / 128 / 256 nodes was 9.76 / 8.74 / 11.69 / 12.110 / 12.111 / 12.1106 against a gap of
    12.1106, and 18.99 / 11.46 / 12.28 / 12.41 / 12.372 / 12.3647 against 12.3648: m = 128 is the first that
    passes both (docs/method.md)."""
    batch = build_batch(inputs, pad_id=pad_id(smollm))
    scored_at = batch.scored_positions(False)
    ig8, _ = integrated_gradients(smollm, sae, LAYER, batch, scored_at, "answer-logprob", 8)
    ig, t_zero = integrated_gradients(smollm, sae, LAYER, batch, scored_at, "answer-logprob", 128)
    for row, got in enumerate(scored):
        gap = got.target - float(t_zero[row])
        assert abs(gap) > 1.0                               # zeroing every latent matters: the check means something
        assert float(ig[row].sum()) == pytest.approx(gap, rel=1e-3)
        assert torch.equal(ig8[row], got.integrated_gradients)   # the scoring path computes the same thing
        assert got.target_zero == pytest.approx(float(t_zero[row]), rel=1e-6)


@pytest.fixture(scope="module")
def strong_sae(smollm):
    """A random ReLU SAE whose decoder rows are 40× its encoder's scale: removing one latent moves the residual
    far, so single-latent effects are well above the target's rounding tolerance."""
    from conftest import make_sae

    ids = smollm.tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad(), smollm.lm.trace(dict(ids)):
        x = smollm.layer(LAYER).output.save()
    sae = make_sae("standard", d_in=576, d_sae=256, layer=LAYER, active=0.2, resid_std=float(x[0, 1:].std()))
    with torch.no_grad():
        sae.W_dec.mul_(40.0)
    return sae


def exact_against_reference(model, sae, layer, ex, candidates):
    """`exact_effects` of `candidates` on `ex`, each checked equal to the reference's drop (a forward hook on the
    unbatched example, T recomputed); returns (effects, tolerance)."""
    hf = model.lm._module
    ref_t = reference_scores(hf, sae, layer, ex.prompt_ids, ex.answer_ids)
    tol = 2 * log_prob_tol(model.config, ref_t.logit_scale, len(ex.answer_ids))
    effects = exact_effects(model, sae, layer, ex, candidates).tolist()
    for c, effect in zip(candidates, effects):
        ref = ref_t.target - reference_ablated_target(hf, sae, layer, ex.prompt_ids, ex.answer_ids, c)
        assert effect == pytest.approx(ref, abs=tol), (c, effect, ref)
    return effects, tol


@pytest.mark.parametrize("which", ["shipped", "strong"])
def test_exact_equals_a_plain_hook_loop(smollm, sae, strong_sae, inputs, scored, which):
    """Each candidate's drop equals the reference's: the latent removed at the scored positions by a forward hook
    on the unbatched example, T recomputed. Two forwards, each a sum of answer log-probs."""
    ex = inputs[1]
    model_sae = sae if which == "shipped" else strong_sae
    got = scored[1] if which == "shipped" else score_examples(smollm, strong_sae, LAYER, [ex])[0]
    candidates = candidate_latents([got.gradsae, got.activation, got.attribution], 6)[:4]
    effects, tol = exact_against_reference(smollm, model_sae, LAYER, ex, candidates)
    if which == "shipped":
        for c, effect in zip(candidates, effects):
            assert float(got.exact[c]) == pytest.approx(effect, abs=tol)
    if which == "strong":                                   # the check can fail: effects far above its tolerance
        assert max(abs(e) for e in effects) > 10 * tol


def test_chunked_client_scores_equal_unchunked(smollm, sae, inputs):
    """x-grad scores of a wide SAE, `latent_chunk` latents at a time, equal the whole-width computation (the
    same inner products of length d_in, blocked differently: within their rounding), token detail included."""
    import math

    from tolerance import unit_roundoff

    whole = score_examples(smollm, sae, LAYER, inputs, scoring="x-grad", token_latents=5)
    chunked = score_examples(smollm, sae, LAYER, inputs, scoring="x-grad", token_latents=5, latent_chunk=1000)
    rtol = 2 * 8 * math.sqrt(sae.cfg.d_in) * unit_roundoff()
    for a, b in zip(whole, chunked):
        for name in ("gradsae", "activation", "attribution", "activation_last"):
            x, y = getattr(a, name), getattr(b, name)
            assert float((x - y).norm() / x.norm()) <= rtol, name
        assert (a.n_tokens, a.n_active_last, a.target) == (b.n_tokens, b.n_active_last, b.target)
        assert a.tokens.latents == b.tokens.latents and a.tokens.ranks == b.tokens.ranks
        # stored in float16: one rounding to half precision on top of the difference above (at most one ulp)
        half_tol = 2 * unit_roundoff(torch.float16) + rtol
        assert torch.allclose(a.tokens.contribution.float(), b.tokens.contribution.float(), rtol=half_tol, atol=0)
