"""GradSAE core against ground truth: lossless splice, scores vs autograd, batching, pairing checks, and a
first-order check against exact ablation (the cases: tests/core_cases.py; edits: tests/test_edits.py).
"""

import math

import pytest
import torch

from conftest import make_sae
from core_cases import (LAYER, examples, layer, model, resid_std, sae, sae_name,  # noqa: F401 (fixtures)
                        with_qwen)
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.core.sae import check_pairing
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.splice import apply_splice
from gradsae_nn.errors import UsageError
from gradsae_nn.modes import Target, choices
from reference import reference_scores
from tolerance import dot_bound, log_prob_tol, network_rtol

pytestmark = pytest.mark.slow


@with_qwen
def test_lossless_splice_leaves_logits_identical(model, sae, layer, examples):
    ids = torch.tensor([list(examples[0].prompt_ids)])
    with torch.no_grad():
        clean = model.lm._module(ids).logits
    with model.lm.trace(ids):
        module = model.layer(layer)
        module.output, h = apply_splice(sae, module.output, "lossless")
        spliced = model.lm.lm_head.output.save()
    # x + (r − r) adds exact zeros, and the layers run on the same shapes: bitwise the same logits
    assert torch.equal(spliced, clean)


def test_reconstruct_splice_changes_logits(model, sae, layer, examples):
    ids = torch.tensor([list(examples[0].prompt_ids)])
    with torch.no_grad():
        clean = model.lm._module(ids).logits
    with torch.no_grad(), model.lm.trace(ids):
        module = model.layer(layer)
        module.output, _ = apply_splice(sae, module.output, "reconstruct")
        recon = model.lm.lm_head.output.save()
    # far beyond rounding: the model really runs on the reconstruction
    assert (recon - clean).abs().max() > 100 * network_rtol(model.config) * clean.abs().max()


def target_log_error(got: float, ref: float, target: str) -> float:
    """|log T − log T_ref|: probabilities are compared in log space (their relative error is their log's
    absolute error); `answer-logprob` already is a log."""
    if target == "answer-logprob":
        return abs(got - ref)
    return abs(math.log(got) - math.log(ref))


def score_errors(got, ref, target):
    """(target's log error, GradSAE relative error, activation relative error) of `got` against `ref`."""
    return (target_log_error(got.target, ref.target, target),
            float((got.gradsae - ref.gradsae).norm() / ref.gradsae.norm()),
            float((got.activation - ref.activation).norm() / ref.activation.norm()))


def score_tolerances(config, ex, ref, target):
    """The tolerances of `score_errors` (see tests/tolerance.py): the target is one forward pass of logits
    whose size is `ref.logit_scale`, summed over the answer tokens it reads; GradSAE needs a forward and a
    backward; the activations a forward."""
    n_read = 1 if target in ("first-token-prob", "format-token-prob") else len(ex.answer_ids)
    return (log_prob_tol(config, ref.logit_scale, n_read), network_rtol(config, passes=2), network_rtol(config))


@with_qwen
@pytest.mark.parametrize("target", choices(Target))
def test_scores_equal_plain_autograd(model, sae, layer, examples, target):
    hf = model.lm._module
    batched = score_examples(model, sae, layer, examples, target=target)
    for ex, got in zip(examples, batched):
        ref = reference_scores(hf, sae, layer, ex.prompt_ids, ex.answer_ids, target)
        errors = score_errors(got, ref, target)
        tolerances = score_tolerances(model.config, ex, ref, target)
        for name, error, tol in zip(("target (log)", "gradsae", "activation"), errors, tolerances):
            assert error <= tol, f"{name} error {error:.2e} > tolerance {tol:.2e}"
        assert got.gradsae.max() > 0
        assert got.n_tokens == len(ex.prompt_ids) - 1


def test_checkpoint_gives_the_same_scores_and_restores_the_model(model, sae, layer, examples, monkeypatch):
    """--checkpoint recomputes the layers above the SAE's in the backward: the same scores (one more forward of
    those layers, so within the forward + backward tolerance), and the layers are left as they were. Its memory
    saving is measured in benchmarks/memory.py (row 6b)."""
    import torch.utils.checkpoint as tuc

    plain = score_examples(model, sae, layer, examples)
    wrapped, real = [], tuc.checkpoint
    monkeypatch.setattr(tuc, "checkpoint", lambda fn, *a, **k: wrapped.append(fn) or real(fn, *a, **k))
    ckpt = score_examples(model, sae, layer, examples, checkpoint=True)
    assert len(wrapped) == model.n_layers - layer - 1          # every layer above L, and only those
    for a, b in zip(plain, ckpt):
        assert float((a.gradsae - b.gradsae).norm() / a.gradsae.norm()) <= network_rtol(model.config, passes=2)
        assert abs(a.target - b.target) <= network_rtol(model.config) * max(1.0, abs(a.target))
    for module in model.lm._module.model.layers:
        assert not module.training and not module.__dict__.get("gradient_checkpointing", False)


def test_checks_catch_deliberate_bugs(model, sae, layer, examples):
    """Each bug below, put into the reference, must break the scoring checks by at least 10x their tolerance:
    the tolerances of `test_scores_equal_plain_autograd` are far from loose enough to let it through."""
    hf = model.lm._module
    ex = examples[1]                                        # a 3-token answer, left-padded in the batch
    for target in choices(Target):
        got = score_examples(model, sae, layer, examples, target=target)[1]
        right = reference_scores(hf, sae, layer, ex.prompt_ids, ex.answer_ids, target)
        tolerances = score_tolerances(model.config, ex, right, target)
        bugs = {
            "answer read one column late": reference_scores(hf, sae, layer, ex.prompt_ids, ex.answer_ids, target,
                                                            logit_shift=1),
            "SAE at the wrong layer": reference_scores(hf, sae, layer + 1, ex.prompt_ids, ex.answer_ids, target),
            "missing error term": reference_scores(hf, sae, layer, ex.prompt_ids, ex.answer_ids, target,
                                                   splice="reconstruct"),
        }
        for bug, wrong in bugs.items():
            margin = max(e / t for e, t in zip(score_errors(got, wrong, target), tolerances))
            print(f"{target}: {bug}: {margin:.0f}x the tolerance")
            assert margin >= 10, f"{target}: {bug} exceeds the tolerances only {margin:.1f}x"


def test_batch_equals_single_and_xgrad_equals_trace(model, sae, layer, examples):
    batched = score_examples(model, sae, layer, examples)
    via_x = score_examples(model, sae, layer, examples, scoring="x-grad")
    # forward + backward evaluated twice (other padding, other batch); x-grad adds ∂T/∂h = ∂T/∂x · W_decᵀ,
    # an inner product over d_model
    rtol = network_rtol(model.config, passes=2) + dot_bound(1.0, model.d_model)
    for i, ex in enumerate(examples):
        single = score_examples(model, sae, layer, [ex])[0]
        for other in (batched[i], via_x[i]):
            assert (other.gradsae - single.gradsae).abs().max() <= rtol * single.gradsae.abs().max()
            assert (other.activation - single.activation).abs().max() <= rtol * single.activation.abs().max()
            assert other.n_active_last == single.n_active_last


def test_pairing_checks(smollm, resid_std):
    wrong_width = make_sae("standard", d_in=640, layer=LAYER)
    with pytest.raises(UsageError, match="d_in 640 but smollm2-135m-it has d_model 576"):
        check_pairing(wrong_width, smollm, LAYER)
    with pytest.raises(UsageError, match="trained on layer 6 .* but layer is 9"):
        check_pairing(make_sae("standard", d_in=576, layer=LAYER), smollm, 9)
    with pytest.raises(UsageError, match="out of range"):
        check_pairing(make_sae("standard", d_in=576, layer=LAYER), smollm, 31)


def test_gradsae_ranks_latents_like_exact_ablation(model, sae, layer, examples):
    """First-order sanity: over each example's 20 highest-scoring latents, the exact drop of the target when
    one latent is zeroed at every token is positively rank-correlated with its GradSAE score."""
    from scipy.stats import spearmanr

    from gradsae_nn.core.scoring import edited_targets

    rhos = []
    for ex in examples:
        scores = score_examples(model, sae, layer, [ex])[0]
        top = torch.argsort(scores.gradsae, descending=True)[:20].tolist()
        edited = edited_targets(model, sae, layer, [ex] * len(top), [LatentEdit(zero=(c,)) for c in top])
        drop = scores.target - edited
        rhos.append(float(spearmanr(scores.gradsae[top].numpy(), drop.numpy()).statistic))
    print(f"Spearman(GradSAE score, exact ablation effect) per example: {[round(r, 3) for r in rhos]}")
    assert sum(rhos) / len(rhos) > 0.3 and min(rhos) > 0, rhos
