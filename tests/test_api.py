"""The notebook API (`gradsae_nn.load`, `Lens`): the quickstart end to end, and the splice and the edit inside
a user's own nnsight traces, equal to the library's own scoring and edited generation."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gradsae_nn as gs
from gradsae_nn.core.targets import target_values, build_batch, ScoringInput
from tolerance import network_rtol

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
           "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.")


@pytest.fixture(scope="module")
def lens():
    return gs.load("smollm2-135m-it")


def test_quickstart_runs_offline():
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "top 10 latents by gradsae" in proc.stdout and "GradSAE top 50 zeroed:" in proc.stdout


def test_load_binds_the_sae_layer(lens):
    assert (lens.layer, lens.sae_spec, lens.sae.cfg.d_in) == (15, "smollm2-135m-it/L15", 576)
    assert gs.load("smollm2-135m-it", sae="smollm2-135m-it/L6").layer == 6       # from the SAE's hook


def test_strings_and_ids_score_alike(lens):
    prompt = lens.qa(CONTEXT, "In which city is the Eiffel Tower?")
    att = lens.score(prompt)
    assert att.answer.strip() == "Paris, France"
    again = lens.score(lens.tokenizer.decode(prompt), answer=att.answer)  # the text of the same prompt and answer
    assert again.prompt_ids == att.prompt_ids and again.answer_ids == att.answer_ids
    assert torch.equal(again.scores.gradsae, att.scores.gradsae)
    rows = att.top(5)
    assert [r.latent for r in rows] == att.top_latents(5) and rows[0].gradsae >= rows[-1].gradsae > 0


def test_splice_inside_a_users_own_trace_gives_the_same_scores(lens):
    """GradSAE by hand in the user's trace (apply_splice + autograd) equals `Lens.score`."""
    prompt = lens.qa(CONTEXT, "In which city is the Eiffel Tower?")
    att = lens.score(prompt)
    batch = build_batch([ScoringInput(att.prompt_ids, att.answer_ids)], pad_id=0)
    lm, module = lens.model.lm, lens.module
    with lm.trace(batch.model_inputs("cpu")):
        module.output, h = gs.apply_splice(lens.sae, module.output, "lossless")
        value = target_values(lm.output.logits, batch, "answer-logprob")
        (grad,) = torch.autograd.grad(value.sum(), h)
        h_saved, grad_saved = h.detach().save(), grad.save()
    n = len(att.prompt_ids)
    mine = torch.relu(grad_saved[0, 1:n] * h_saved[0, 1:n]).mean(0)
    rel = float((mine - att.scores.gradsae).norm() / att.scores.gradsae.norm())
    assert rel <= network_rtol(lens.model.config, passes=2)


@pytest.mark.filterwarnings("ignore:.*was never reached")  # the open iter[:] loop ends at the stop, by design
def test_edit_inside_a_users_own_generate_gives_the_same_answer(lens):
    prompt = lens.qa(CONTEXT, "In which city is the Eiffel Tower?")
    zero = lens.score(prompt).top_latents(50)
    lm, module = lens.model.lm, lens.module
    ids = torch.tensor([prompt])
    with torch.no_grad(), lm.generate(max_new_tokens=16, do_sample=False, stop_strings=["\n"],
                                      tokenizer=lens.tokenizer, pad_token_id=lens.tokenizer.eos_token_id) as tracer:
        with tracer.invoke({"input_ids": ids, "attention_mask": torch.ones_like(ids)}):
            for _ in tracer.iter[:]:
                module.output = gs.apply_edit(lens.sae, module.output, zero=zero)
        with tracer.invoke():
            out = tracer.result.save()
    mine = gs.api.extract_answer(lens.tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True))
    assert mine == lens.generate(prompt, zero=zero) != lens.generate(prompt)   # the edit changes the answer
