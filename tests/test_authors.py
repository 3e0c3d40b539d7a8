"""The authors' protocol (`--protocol authors`), piece by piece, against `reference.authors_loop`: a plain-PyTorch
rewrite of their no-cache loop (hooks + `torch.autograd.grad`, no nnsight), on the embedded SmolLM2 with its
shipped SAE.

Checked: the SAE-spliced answer and its extraction, the target's step and value, the scores over every
position at that step, K from that step's last position, the padded TopK and non-zero BottomK, and edits
(ablation at every position; steering at the newest position only, `positions="current"`) token for token.
"""

import pytest
import torch

from gradsae_nn.core.editing import edited_generate, eos_ids
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.core.generation import extract_answer
from gradsae_nn.core.sae import load_sae
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.selection import select
from gradsae_nn.core.targets import ScoringInput, format_target_ids
from gradsae_nn.data.prompts import PROMPTS, prompt_ids
from reference import authors_extract, authors_k, authors_loop, authors_select
from tolerance import assert_same_greedy, network_rtol, top2_gap

pytestmark = pytest.mark.slow
SAE_NAME, LAYER = "smollm2-135m-it/L15", 15
N_NEW = 50       # the authors' answer length
N_EDIT = 24      # tokens compared under an edit (each reference step re-runs the whole sequence)


@pytest.fixture(scope="module")
def sae(smollm):
    return load_sae(SAE_NAME, smollm, LAYER)


@pytest.fixture(scope="module")
def runs(smollm, sae, dev_examples):
    """The first two of the first 12 dev examples whose spliced completion has a format token ('['), found with
    the library's cached generation: (prompt ids, the reference run of the authors' loop on it)."""
    hf, tok = smollm.lm._module, smollm.tokenizer
    found = []
    for ex in dev_examples[:12]:
        ids = prompt_ids(smollm, PROMPTS["authors-open-turn"], ex)
        ours = edited_generate(smollm, sae, LAYER, [ids], [LatentEdit()], N_NEW, splice="reconstruct", stop="eos")[0]
        if format_target_ids(ours, tok) is not None:
            found.append((ids, authors_loop(hf, tok, sae, LAYER, ids, N_NEW, eos=eos_ids(smollm), score=True)))
        if len(found) == 2:
            break
    if len(found) < 2 or any(run.step is None for _, run in found):
        pytest.fail("fewer than 2 of the first 12 dev examples have a format token under the authors' prompt "
                    "(or the reference loop found none where the library did)")
    return found


def next_logits(hf, sae, prompt, zero=(), inject=(), positions="all"):
    """Logits of the authors' loop's next step for `prompt` (reconstruct splice, the edit as given)."""
    from reference import sae_decode, sae_encode

    def hook(_module, _inputs, output):
        x = output[0] if isinstance(output, tuple) else output
        h = sae_encode(sae, x)
        where = slice(None) if positions == "all" else slice(-1, None)
        for latent in zero:
            h[:, where, latent] = 0.0
        for latent, value in inject:
            h[:, where, latent] = value
        return sae_decode(sae, h)

    handle = hf.model.layers[LAYER].register_forward_hook(hook)
    try:
        with torch.no_grad():
            return hf(torch.tensor([list(prompt)]), use_cache=False).logits[0, -1]
    finally:
        handle.remove()


def assert_tokens(smollm, sae, prompt, ours, ref, **edit):
    eos = eos_ids(smollm)
    ref = [t for t in ref if t not in eos]                               # `generate`'s rows lose their EOS/pad
    hf = smollm.lm._module
    assert_same_greedy(ours, ref, lambda i: top2_gap(next_logits(hf, sae, list(prompt) + ref[:i], **edit)),
                       smollm.config)


def test_spliced_answer_and_extraction(smollm, sae, runs):
    for prompt, run in runs:
        ours = edited_generate(smollm, sae, LAYER, [prompt], [LatentEdit()], N_NEW, splice="reconstruct", stop="eos")[0]
        assert_tokens(smollm, sae, prompt, ours, run.tokens)
        text = smollm.tokenizer.decode(run.tokens, skip_special_tokens=True)
        assert extract_answer(text, "brackets") == authors_extract(text)
        assert "[" not in extract_answer(text, "brackets")


def test_target_step_positions_and_scores(smollm, sae, runs):
    rtol = network_rtol(smollm.config, passes=2)
    for prompt, run in runs:
        answer = format_target_ids(run.tokens, smollm.tokenizer)
        assert len(answer) == run.step + 1                               # the target's step is the last '[' token
        (got,) = score_examples(smollm, sae, LAYER, [ScoringInput(tuple(prompt), answer)], target="format-token-prob",
                                splice="reconstruct", scored_positions="all-at-target-step")
        assert abs(got.target - run.target) <= rtol * run.target
        assert got.n_tokens == len(prompt) + run.step                    # every position: BOS, prompt, prefix
        assert got.n_active_last == run.n_active_last
        assert float((got.gradsae - run.scores).norm() / run.scores.norm()) <= rtol
        # K and the selections, from the same scores: exactly the authors' rule
        k = authors_k(run.n_active_last)
        top, bottom = authors_select(run.scores, k)
        assert list(select(run.scores, "50%", "top", run.n_active_last, pad=True).latents) == top
        assert list(select(run.scores, "50%", "bottom", run.n_active_last).latents) == bottom


def test_padded_topk_fills_with_zero_scores():
    scores = torch.tensor([0.0, 3.0, 0.0, 1.0, 0.0])
    assert select(scores, 4, "top", 8, pad=True).latents == (1, 3, 0, 2)  # zeros by lower id after the positives
    assert select(scores, 4, "top", 8).latents == (1, 3)                  # the project's: positives only
    assert select(scores, 4, "bottom", 8, pad=True).latents == (3, 1)     # BottomK never pads


# "current" (steering at the newest position only) is the authors' own scheme; "all" is the edit that
# tests/test_edits.py checks against plain hooks, here again with the reconstruct splice (`extended`)
@pytest.mark.parametrize("positions", [pytest.param("all", marks=pytest.mark.extended), "current"])
def test_edits_equal_the_no_cache_loop(smollm, sae, runs, positions):
    """Ablation at every position and steering at the newest position only, batched and left-padded, against
    the authors' loop re-running the whole sequence per token."""
    prompts = [p for p, _ in runs]
    own = [select(run.scores, 10, "top", run.n_active_last, pad=True).latents for _, run in runs]
    edits = [LatentEdit(zero=own[0], inject=tuple((c, 5.0) for c in own[1][:5])),
             LatentEdit(zero=own[1], inject=tuple((c, 5.0) for c in own[0][:5]))]
    ours = edited_generate(smollm, sae, LAYER, prompts, edits, N_EDIT, splice="reconstruct", positions=positions,
                           stop="eos")
    other = "all" if positions == "current" else "current"
    wrong = edited_generate(smollm, sae, LAYER, prompts, edits, N_EDIT, splice="reconstruct", positions=other,
                            stop="eos")
    hf = smollm.lm._module
    changed = told_apart = 0
    for prompt, edit, got, bad, (_, plain) in zip(prompts, edits, ours, wrong, runs):
        ref = authors_loop(hf, smollm.tokenizer, sae, LAYER, prompt, N_EDIT, eos=eos_ids(smollm), zero=edit.zero,
                           inject=edit.inject, positions=positions)
        assert_tokens(smollm, sae, prompt, got, ref.tokens, zero=edit.zero, inject=edit.inject, positions=positions)
        changed += ref.tokens != plain.tokens[:N_EDIT]
        told_apart += [t for t in ref.tokens if t not in eos_ids(smollm)] != bad
    assert changed, "the edits changed no output: the comparison would not see an edit applied at the wrong place"
    assert told_apart, f"positions {other} gives the same tokens: the comparison cannot tell the two schemes apart"
