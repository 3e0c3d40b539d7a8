"""GradSAE core against ground truth: lossless splice, scores vs autograd, edits vs plain hooks, batching.

The model is the real embedded SmolLM2-135M-Instruct; SAEs are random SAELens SAEs of each architecture
(`conftest.make_sae`) scaled to the model's residual stream, so the checks are about the mechanics.
"""

import pytest
import torch

from conftest import make_sae
from gradsae_nn.editing import edited_generate
from gradsae_nn.errors import UsageError
from gradsae_nn.generation import greedy_generate
from gradsae_nn.sae import check_pairing, hook_layer, load_sae, shipped_sae_names, slice_sae
from gradsae_nn.scoring import score_examples
from gradsae_nn.splice import BatchEdit, EditApplier, LatentEdit, resolve_edit_impl, splice
from gradsae_nn.targets import TARGETS, ScoringInput
from reference import reference_edit, reference_generate, reference_scores, reference_sliced_edit

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


@pytest.fixture(scope="module", params=["standard", "jumprelu", *SHIPPED])
def sae(request, smollm, resid_std):
    """Random ReLU and JumpReLU SAEs at layer 6, plus the default shipped (trained) SmolLM2 SAE at its layer."""
    if request.param in SHIPPED:
        return load_sae(request.param, smollm, int(request.param.split("/L")[1]))
    return make_sae(request.param, d_in=576, layer=LAYER, resid_std=resid_std)


@pytest.fixture(scope="module")
def layer(sae):
    return hook_layer(sae)


@pytest.fixture(scope="module")
def examples(smollm):
    """Prompts of different lengths with answers of 1-5 tokens."""
    tok = smollm.tokenizer
    return [ScoringInput(tuple(tok(p)["input_ids"]), tuple(tok(a, add_special_tokens=False)["input_ids"]))
            for p, a in zip(PROMPTS, ANSWERS)]


def test_lossless_splice_leaves_logits_identical(smollm, sae, layer, examples):
    ids = torch.tensor([list(examples[0].prompt_ids)])
    with torch.no_grad():
        clean = smollm.lm._module(ids).logits
    with smollm.lm.trace(ids):
        module = smollm.layer(layer)
        module.output, h = splice(sae, module.output, "lossless")
        spliced = smollm.lm.lm_head.output.save()
    assert (spliced - clean).abs().max().item() <= 1e-6


def test_reconstruct_splice_changes_logits(smollm, sae, layer, examples):
    ids = torch.tensor([list(examples[0].prompt_ids)])
    with torch.no_grad():
        clean = smollm.lm._module(ids).logits
    with torch.no_grad(), smollm.lm.trace(ids):
        module = smollm.layer(layer)
        module.output, _ = splice(sae, module.output, "reconstruct")
        recon = smollm.lm.lm_head.output.save()
    assert (recon - clean).abs().max().item() > 1e-2


@pytest.mark.parametrize("target", TARGETS)
def test_scores_equal_plain_autograd(smollm, sae, layer, examples, target):
    hf = smollm.lm._module
    batched = score_examples(smollm, sae, layer, examples, target=target)
    for ex, got in zip(examples, batched):
        grad_ref, act_ref, value = reference_scores(hf, sae, layer, ex.prompt_ids, ex.answer_ids, target)
        assert got.target == pytest.approx(value, rel=1e-5)
        assert got.gradsae.max() > 0
        rel = (got.gradsae - grad_ref).norm() / grad_ref.norm()
        assert rel <= 1e-5, f"gradsae relative error {rel:.2e}"
        assert (got.activation - act_ref).norm() / act_ref.norm() <= 1e-5
        assert got.n_tokens == len(ex.prompt_ids) - 1


def test_batch_equals_single_and_xgrad_equals_trace(smollm, sae, layer, examples):
    batched = score_examples(smollm, sae, layer, examples)
    via_x = score_examples(smollm, sae, layer, examples, method="x-grad")
    for i, ex in enumerate(examples):
        single = score_examples(smollm, sae, layer, [ex])[0]
        for other in (batched[i], via_x[i]):
            assert (other.gradsae - single.gradsae).abs().max() <= 1e-4 * single.gradsae.abs().max()
            assert (other.activation - single.activation).abs().max() <= 1e-4 * single.activation.abs().max()
            assert other.n_active_last == single.n_active_last


def test_sliced_edit_equals_full_and_reference(sae, layer, resid_std):
    x = torch.randn(2, 5, 576) * resid_std
    edits = [LatentEdit(zero=(3, 10, 500)), LatentEdit(zero=(7,), inject=((10, 4.0), (11, 2.5)))]
    batch = BatchEdit.build(edits, "cpu", torch.float32)
    sliced = EditApplier(sae, batch, "sliced", "lossless")(x)
    full = EditApplier(sae, batch, "full", "lossless")(x)
    # the full path subtracts two decodes of ~d_sae terms: fp32 cancellation of ~1e-4 on values ~10 (trained SAE)
    assert torch.allclose(sliced, full, atol=5e-4, rtol=1e-5)
    for row, e in enumerate(edits):
        ref = reference_edit(sae, x[row], e.zero, e.inject)
        assert torch.allclose(sliced[row], ref, atol=5e-4, rtol=1e-5)
        assert torch.allclose(sliced[row], reference_sliced_edit(sae, x[row], e.zero, e.inject), atol=1e-5)
    assert not torch.allclose(sliced, x, atol=1e-3)  # the edit did something


def _strong_edits(smollm, sae, layer, ex, k=40):
    """Ablate the k most active latents; steer (zero 10, inject 2); inject two latents very strongly."""
    with torch.no_grad(), smollm.lm.trace(torch.tensor([list(ex.prompt_ids)])):
        x = smollm.layer(layer).output.save()
    h = sae.encode(x)[0].mean(0)
    top = torch.argsort(h, descending=True)[:k].tolist()
    return (LatentEdit(zero=tuple(top)), LatentEdit(zero=tuple(top[:10]), inject=((top[-1], 25.0), (5, 30.0))),
            LatentEdit(inject=((top[0], 400.0), (top[1], 400.0))))


@pytest.mark.parametrize("positions", ["all", "last"])
def test_edited_generate_equals_plain_hooks(smollm, sae, layer, examples, positions):
    hf, tok = smollm.lm._module, smollm.tokenizer
    ex = examples[2]
    plain = greedy_generate(smollm, [list(ex.prompt_ids)], 12)[0]
    changed = 0
    for edit in _strong_edits(smollm, sae, layer, ex):
        ours = edited_generate(smollm, sae, layer, [list(ex.prompt_ids)], [edit], 12, positions=positions)[0]
        ref = reference_generate(hf, tok, sae, layer, ex.prompt_ids, edit.zero, edit.inject, 12, positions=positions)
        assert ours == ref
        changed += ours != plain
    assert changed >= 1  # some edit changes the output, so the equalities above mean something


def test_shared_lower_layers_give_the_same_tokens(smollm, sae, layer, examples, monkeypatch):
    """One prompt in every row (a perturbation batch): layers ≤ L run once, and the tokens are the same."""
    from gradsae_nn import editing

    ex = examples[2]
    edits = [LatentEdit(), *_strong_edits(smollm, sae, layer, ex)]
    plan = editing.plan_generation(smollm, sae, [list(ex.prompt_ids)] * len(edits), edits, 12)
    assert editing.shares_lower_layers(plan)
    shared = editing.run_generations(smollm, layer, [plan])[0]
    monkeypatch.setattr(editing, "shares_lower_layers", lambda plan: False)
    assert shared == editing.run_generations(smollm, layer, [plan])[0]
    assert len(set(map(tuple, shared))) > 1  # the edits change outputs, so the equality means something


def test_cut_after_stop_only_at_the_first_token(smollm):
    from gradsae_nn.editing import cut_after_stop

    tok = smollm.tokenizer
    newline = tok("\n", add_special_tokens=False)["input_ids"][-1]
    word = tok(" Paris", add_special_tokens=False)["input_ids"][0]
    assert cut_after_stop([newline, word, word], set(), tok, True) == [newline]
    assert cut_after_stop([newline, word], set(), tok, False) == [newline, word]
    assert cut_after_stop([7, word], {7}, tok, True) == [7]
    assert cut_after_stop([word, newline, word], set(), tok, True) == [word, newline, word]  # generate cuts those


def test_empty_edit_equals_unedited_generate(smollm, sae, layer, examples):
    prompts = [list(ex.prompt_ids) for ex in examples]
    assert edited_generate(smollm, sae, layer, prompts, [LatentEdit()] * 3, 12) == greedy_generate(smollm, prompts, 12)


def test_batched_edits_equal_single(smollm, sae, layer, examples):
    prompts = [list(ex.prompt_ids) for ex in examples]
    edits = [_strong_edits(smollm, sae, layer, ex)[i % 3] for i, ex in enumerate(examples)]
    batched = edited_generate(smollm, sae, layer, prompts, edits, 12)
    single = [edited_generate(smollm, sae, layer, [p], [e], 12)[0] for p, e in zip(prompts, edits)]
    assert batched == single


def test_topk_sae_refuses_sliced_edit(smollm, resid_std):
    topk = make_sae("topk", d_in=576, layer=LAYER, resid_std=resid_std)
    with pytest.raises(UsageError, match="use --edit-impl full"):
        resolve_edit_impl(topk, "sliced", "lossless")
    assert resolve_edit_impl(topk, "auto", "lossless") == "full"
    with pytest.raises(UsageError, match="sliced edit needs a ReLU or JumpReLU"):
        slice_sae(topk, [1, 2])


def test_pairing_checks(smollm, resid_std):
    wrong_width = make_sae("standard", d_in=640, layer=LAYER)
    with pytest.raises(UsageError, match="d_in 640 but smollm2-135m-it has d_model 576"):
        check_pairing(wrong_width, smollm, LAYER)
    with pytest.raises(UsageError, match="trained on layer 6 .* but --layer is 9"):
        check_pairing(make_sae("standard", d_in=576, layer=LAYER), smollm, 9)
    with pytest.raises(UsageError, match="out of range"):
        check_pairing(make_sae("standard", d_in=576, layer=LAYER), smollm, 31)


def test_gradsae_ranks_latents_like_exact_ablation(smollm, sae, layer, examples):
    """First-order sanity: over each example's 20 highest-scoring latents, the exact drop of the target when
    one latent is zeroed at every token is positively rank-correlated with its GradSAE score."""
    from scipy.stats import spearmanr

    from gradsae_nn.scoring import edited_targets

    rhos = []
    for ex in examples:
        scores = score_examples(smollm, sae, layer, [ex])[0]
        top = torch.argsort(scores.gradsae, descending=True)[:20].tolist()
        edited = edited_targets(smollm, sae, layer, [ex] * len(top), [LatentEdit(zero=(c,)) for c in top])
        drop = scores.target - edited
        rhos.append(float(spearmanr(scores.gradsae[top].numpy(), drop.numpy()).statistic))
    print(f"Spearman(GradSAE score, exact ablation effect) per example: {[round(r, 3) for r in rhos]}")
    assert sum(rhos) / len(rhos) > 0.3 and min(rhos) > 0, rhos
