"""GradSAE core against ground truth: lossless splice, scores vs autograd, edits vs plain hooks, batching.

The model is the real embedded SmolLM2-135M-Instruct; SAEs are random SAELens SAEs of each architecture
(`conftest.make_sae`) scaled to the model's residual stream, so the checks are about the mechanics, plus the
default shipped (trained) SAE. The splice, scores and edits checks also run on the Qwen 0.5B with its default
shipped SAE (`qwen` mark).
"""

import math

import pytest
import torch

from conftest import MODEL_FIXTURES, make_sae
from gradsae_nn.core.editing import edited_generate
from gradsae_nn.errors import UsageError
from gradsae_nn.core.generation import greedy_generate
from gradsae_nn.core.sae import DEFAULT_SAE_LAYER, check_pairing, hook_layer, load_sae, shipped_sae_names, slice_sae
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.edits import BatchEdit, EditApplier, LatentEdit, resolve_edit_impl
from gradsae_nn.core.splice import apply_splice
from gradsae_nn.core.targets import ScoringInput
from gradsae_nn.modes import Target, choices
from reference import (reference_edit, reference_generate, reference_next_logits, reference_scores,
                       reference_sliced_edit, sae_encode)
from tolerance import (assert_same_greedy, dot_bound, log_prob_tol, network_rtol, top2_gap, unit_roundoff)

pytestmark = pytest.mark.slow
LAYER = 6
PROMPTS = ["Question: What is the capital of France?\nAnswer:", "The three primary colours are red,",
           "Super Bowl 50 was played at Levi's Stadium in"]
ANSWERS = [" Paris", " yellow and blue", " Santa Clara, California"]


@pytest.fixture(scope="module")
def resid_std(smollm):
    ids = smollm.tokenizer(PROMPTS[0], return_tensors="pt")
    with torch.no_grad(), smollm.lm.trace(dict(ids)):
        x = smollm.layer(LAYER).output.save()
    return float(x[0, 1:].std())


# the default trained SAE; every shipped SAE's own quality is checked in test_sae_training
SHIPPED = [name for name in shipped_sae_names() if name == "smollm2-135m-it/L15"]
SAES = ["standard", "jumprelu", *SHIPPED]
# The three ground-truth checks (splice, scores, edits) once more on the Qwen 0.5B with its default shipped SAE:
# biases on q/k/v, tied embeddings, d_model 896 and another chat template are what could break them there.
QWEN = f"qwen2.5-coder-0.5b-it/L{DEFAULT_SAE_LAYER['qwen2.5-coder-0.5b-it']}"
with_qwen = pytest.mark.parametrize(
    "sae_name", [*SAES, pytest.param(QWEN, marks=pytest.mark.qwen)], indirect=True)


@pytest.fixture(scope="module", params=SAES)
def sae_name(request):
    """Random ReLU and JumpReLU SAEs on SmolLM2 at layer 6, or a shipped (trained) SAE by name."""
    return request.param


@pytest.fixture(scope="module")
def model(request, sae_name):
    """The model `sae_name` belongs to (random SAEs: SmolLM2), a session fixture of conftest.py."""
    return request.getfixturevalue(MODEL_FIXTURES[sae_name.split("/")[0] if "/" in sae_name else "smollm2-135m-it"])


@pytest.fixture(scope="module")
def sae(request, sae_name, model):
    if "/" in sae_name:
        return load_sae(sae_name, model, int(sae_name.split("/L")[1]))
    # only a random SAE needs SmolLM2's residual scale (a SmolLM2 trace): the Qwen case never loads SmolLM2 for it
    return make_sae(sae_name, d_in=576, layer=LAYER, resid_std=request.getfixturevalue("resid_std"))


@pytest.fixture(scope="module")
def layer(sae):
    return hook_layer(sae)


@pytest.fixture(scope="module")
def examples(model):
    """Prompts of different lengths with answers of 1-5 tokens."""
    tok = model.tokenizer
    return [ScoringInput(tuple(tok(p)["input_ids"]), tuple(tok(a, add_special_tokens=False)["input_ids"]))
            for p, a in zip(PROMPTS, ANSWERS)]


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


def edit_rounding_bound(sae, x, zero, inject):
    """Elementwise bound on |sliced − full| for one edit of `x` `[..., d_in]` (see tests/tolerance.py).

    full: decode(edited) + x − decode(h), two decodes of length d_sae; sliced: x + (inject − f_U)·W_dec[U], one
    inner product of length |U|; the edited latents' activations f_U are computed by both (encoder inner
    products of length d_in) and enter through W_dec[U]; plus the additions of x.
    """
    W_enc, W_dec, b_dec = sae.W_enc, sae.W_dec, sae.b_dec * float(sae.cfg.apply_b_dec_to_input)
    d_in, d_sae = W_enc.shape
    latents = list(dict.fromkeys([*zero, *(i for i, _ in inject)]))
    h = sae_encode(sae, x)
    edited = h.clone()
    edited[..., latents] = 0.0
    for latent, value in inject:
        edited[..., latent] = value
    pre_error = dot_bound((x - b_dec).abs() @ W_enc.abs() + sae.b_enc.abs(), d_in + 1)
    decode_error = dot_bound((edited.abs() + h.abs()) @ W_dec.abs() + 2 * sae.b_dec.abs(), d_sae + 1)
    sliced_error = dot_bound((h[..., latents].abs() + edited[..., latents].abs()) @ W_dec[latents].abs(),
                             len(latents))
    encode_error = 2 * pre_error[..., latents] @ W_dec[latents].abs()
    add_error = 4 * unit_roundoff() * (x.abs() + h.abs() @ W_dec.abs() + sae.b_dec.abs())
    if sae.cfg.architecture() == "jumprelu":  # the gate jumps at its threshold: no latent may sit within rounding of it
        pre = (x - b_dec) @ W_enc[:, latents] + sae.b_enc[latents]
        assert ((pre - sae.threshold[latents]).abs() > 2 * pre_error[..., latents]).all(), "borderline latent"
    return decode_error + sliced_error + encode_error + add_error


def test_sliced_edit_equals_full_and_reference(sae, layer, resid_std):
    x = torch.randn(2, 5, 576, generator=torch.Generator().manual_seed(0)) * resid_std
    active = torch.argsort(sae_encode(sae, x).flatten(0, 1).sum(0), descending=True)[:4].tolist()  # latents that fire
    edits = [LatentEdit(zero=(active[0], active[1], 500)), LatentEdit(zero=(active[2],), inject=((active[3], 4.0), (11, 2.5)))]
    batch = BatchEdit.build(edits, "cpu", torch.float32)
    sliced = EditApplier(sae, batch, "sliced", "lossless")(x)
    full = EditApplier(sae, batch, "full", "lossless")(x)
    for row, e in enumerate(edits):
        bound = edit_rounding_bound(sae, x[row], e.zero, e.inject)
        assert ((sliced[row] - full[row]).abs() <= bound).all()
        assert ((sliced[row] - reference_edit(sae, x[row], e.zero, e.inject)).abs() <= bound).all()
        assert ((sliced[row] - reference_sliced_edit(sae, x[row], e.zero, e.inject)).abs() <= bound).all()
        assert (sliced[row] - x[row]).abs().max() > 10 * bound.max()            # the edit did something
        # deliberate bugs break the check by far: the error term left out, an off-by-one latent
        no_error_term = sae.decode(sae.encode(x[row]))
        off_by_one = reference_edit(sae, x[row], tuple(c + 1 for c in e.zero), e.inject)
        for wrong in (no_error_term, off_by_one):
            assert ((wrong - full[row]).abs() / bound).max() > 10


def _strong_edits(model, sae, layer, ex, k=40):
    """Ablate the k most active latents; steer (zero 10, inject 2); inject two latents very strongly."""
    with torch.no_grad(), model.lm.trace(torch.tensor([list(ex.prompt_ids)])):
        x = model.layer(layer).output.save()
    h = sae.encode(x)[0].mean(0)
    top = torch.argsort(h, descending=True)[:k].tolist()
    return (LatentEdit(zero=tuple(top)), LatentEdit(zero=tuple(top[:10]), inject=((top[-1], 25.0), (5, 30.0))),
            LatentEdit(inject=((top[0], 400.0), (top[1], 400.0))))


def assert_same_tokens(model, sae, layer, prompt, edit, ours, ref, positions="all"):
    """Greedy tokens equal, or parting only at a near-tie of the edited model's logits (tests/tolerance.py)."""
    def gap_at(step):
        return top2_gap(reference_next_logits(model.lm._module, prompt, list(ours[:step]), sae, layer, edit.zero,
                                              edit.inject, positions))

    assert_same_greedy(ours, ref, gap_at, model.config)


@with_qwen
@pytest.mark.parametrize("positions", ["all", "last", "generated"])
def test_edited_generate_equals_plain_hooks(model, sae, layer, examples, positions):
    hf, tok = model.lm._module, model.tokenizer
    ex = examples[2]
    plain = greedy_generate(model, [list(ex.prompt_ids)], 12)[0]
    changed = 0
    for edit in _strong_edits(model, sae, layer, ex):
        ours = edited_generate(model, sae, layer, [list(ex.prompt_ids)], [edit], 12, positions=positions)[0]
        ref = reference_generate(hf, tok, sae, layer, ex.prompt_ids, edit.zero, edit.inject, 12, positions=positions)
        assert_same_tokens(model, sae, layer, ex.prompt_ids, edit, ours, ref, positions)
        changed += ours != plain
    assert changed >= 1  # some edit changes the output, so the equalities above mean something


def test_shared_lower_layers_give_the_same_tokens(model, sae, layer, examples, monkeypatch):
    """One prompt in every row (a perturbation batch): layers ≤ L run once, and the tokens are the same."""
    from gradsae_nn.core import editing

    ex = examples[2]
    edits = [LatentEdit(), *_strong_edits(model, sae, layer, ex)]
    plan = editing.plan_generation(model, sae, [list(ex.prompt_ids)] * len(edits), edits, 12)
    assert editing.shares_lower_layers(plan)
    shared = editing.run_generations(model, layer, [plan])[0]
    monkeypatch.setattr(editing, "shares_lower_layers", lambda plan: False)
    for edit, ours, ref in zip(edits, shared, editing.run_generations(model, layer, [plan])[0]):
        assert_same_tokens(model, sae, layer, ex.prompt_ids, edit, ours, ref)
    assert len(set(map(tuple, shared))) > 1  # the edits change outputs, so the equality means something


def test_cut_after_stop_only_at_the_first_token(smollm):
    from gradsae_nn.core.editing import cut_after_stop

    tok = smollm.tokenizer
    newline = tok("\n", add_special_tokens=False)["input_ids"][-1]
    word = tok(" Paris", add_special_tokens=False)["input_ids"][0]
    assert cut_after_stop([newline, word, word], set(), tok, True) == [newline]
    assert cut_after_stop([newline, word], set(), tok, False) == [newline, word]
    assert cut_after_stop([7, word], {7}, tok, True) == [7]
    assert cut_after_stop([word, newline, word], set(), tok, True) == [word, newline, word]  # generate cuts those


def test_empty_edit_equals_unedited_generate(model, sae, layer, examples):
    prompts = [list(ex.prompt_ids) for ex in examples]
    edited = edited_generate(model, sae, layer, prompts, [LatentEdit()] * 3, 12)
    for prompt, ours, ref in zip(prompts, edited, greedy_generate(model, prompts, 12)):
        assert_same_tokens(model, sae, layer, prompt, LatentEdit(), ours, ref)


def test_batched_edits_equal_single(model, sae, layer, examples):
    prompts = [list(ex.prompt_ids) for ex in examples]
    edits = [_strong_edits(model, sae, layer, ex)[i % 3] for i, ex in enumerate(examples)]
    batched = edited_generate(model, sae, layer, prompts, edits, 12)
    single = [edited_generate(model, sae, layer, [p], [e], 12)[0] for p, e in zip(prompts, edits)]
    for prompt, edit, ours, ref in zip(prompts, edits, batched, single):
        assert_same_tokens(model, sae, layer, prompt, edit, ours, ref)


def test_topk_sae_refuses_sliced_edit(smollm, resid_std):
    topk = make_sae("topk", d_in=576, layer=LAYER, resid_std=resid_std)
    with pytest.raises(UsageError, match="use edit_impl full"):
        resolve_edit_impl(topk, "sliced", "lossless")
    assert resolve_edit_impl(topk, "auto", "lossless") == "full"
    with pytest.raises(UsageError, match="sliced edit needs a ReLU or JumpReLU"):
        slice_sae(topk, [1, 2])


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
