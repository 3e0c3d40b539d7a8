"""Latent edits against plain PyTorch: sliced vs full vs the reference edit, edited generation vs HF `generate`
with a forward hook (positions all, last, generated), shared lower layers, empty and batched edits (the cases:
tests/core_cases.py).
"""

import pytest
import torch

from conftest import make_sae
from core_cases import (LAYER, QWEN, SAES, examples, layer, model, resid_std, sae,  # noqa: F401 (fixtures)
                        sae_name)
from gradsae_nn.core.editing import edited_generate
from gradsae_nn.core.edits import BatchEdit, EditApplier, LatentEdit, resolve_edit_impl
from gradsae_nn.core.generation import greedy_generate
from gradsae_nn.core.sae import slice_sae
from gradsae_nn.errors import UsageError
from reference import reference_edit, reference_generate, reference_next_logits, reference_sliced_edit, sae_encode
from tolerance import assert_same_greedy, dot_bound, top2_gap, unit_roundoff

pytestmark = pytest.mark.slow


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


# every SmolLM2 SAE at every scheme; the Qwen 0.5B at "all" (the others are the same code on another model)
EDIT_CASES = [(name, positions) for name in SAES for positions in ("all", "last", "generated")] + [
    pytest.param(QWEN, positions, marks=[pytest.mark.qwen] + ([] if positions == "all" else [pytest.mark.extended]))
    for positions in ("all", "last", "generated")]


@pytest.mark.parametrize("sae_name, positions", EDIT_CASES, indirect=["sae_name"])
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
