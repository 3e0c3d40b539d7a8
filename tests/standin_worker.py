"""Run the product's paths on a built stand-in (benchmarks/standins.py), in a fresh process whose environment
resolves hub names from the stand-in cache only (`standins.hub_env`); prints a JSON summary, exits 1 on a
failed check. Used by tests/test_standins.py:

    HF_HOME=ROOT HF_HUB_OFFLINE=1 python tests/standin_worker.py BUILT_JSON

Checks, each against the plain-PyTorch reference of tests/reference.py with the tolerances of
tests/tolerance.py: the model and SAE load by their hub names (SAELens's registry and converter);
GradSAE scores, in-trace and x-grad; an edited generation (zero + inject, sliced edit); and the remote
client's request bytes for scoring and for that edited generation (serialized, not sent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import torch  # noqa: E402

from reference import reference_generate, reference_next_logits, reference_scores  # noqa: E402
from tolerance import assert_same_greedy, network_rtol, top2_gap  # noqa: E402

CONTEXT = "The Normans gave their name to Normandy, a region in France."
QUESTION = "In what country is Normandy?"


def check(built: dict) -> dict:
    from benchmarks.remote import request_bytes
    from gradsae_nn import api
    from gradsae_nn.core.editing import edited_generate, generate_trace, plan_generation
    from gradsae_nn.core.edits import LatentEdit
    from gradsae_nn.core.scoring import grad_trace, score_examples
    from gradsae_nn.core.targets import ScoringInput, build_batch
    from gradsae_nn.models import load_model
    from gradsae_nn.remote import RemoteOptions

    lens = api.load(built["model"], built["sae"], device="cpu")
    model, sae, layer = lens.model, lens.sae, lens.layer
    assert (layer, sae.cfg.d_in, sae.cfg.d_sae) == (built["layer"], built["d_model"], built["d_sae"])
    prompt = lens.qa(CONTEXT, QUESTION)
    answer = tuple(lens.tokenizer(" France", add_special_tokens=False)["input_ids"])
    example = ScoringInput(tuple(prompt), answer)
    hf = model.lm._module
    ref = reference_scores(hf, sae, layer, prompt, answer)
    out: dict = {"prompt_tokens": len(prompt), "prompt_style": model.prompt_style}
    for scoring in ("trace", "x-grad"):
        (got,) = score_examples(model, sae, layer, [example], scoring=scoring)
        error = float((got.gradsae - ref.gradsae).norm() / ref.gradsae.norm())
        tol = network_rtol(model.config, passes=2)
        assert error <= tol, f"{scoring}: GradSAE error {error:.2e} > tolerance {tol:.2e}"
        out[f"gradsae_error_{scoring}"], out["gradsae_tol"] = error, tol
    top = torch.argsort(got.gradsae, descending=True)[:10].tolist()
    with torch.no_grad(), model.lm.trace(torch.tensor([prompt])):
        norm = model.layer(layer).output.norm(dim=-1).mean().save()
    edit = LatentEdit(zero=tuple(top), inject=((top[-1], 20 * float(norm)),))  # strong enough to change the output
    plain = edited_generate(model, sae, layer, [prompt], [LatentEdit()], 8)[0]
    ours = edited_generate(model, sae, layer, [prompt], [edit], 8)[0]
    ref_tokens = reference_generate(hf, lens.tokenizer, sae, layer, prompt, edit.zero, edit.inject, 8)
    assert_same_greedy(ours, ref_tokens, lambda i: top2_gap(reference_next_logits(
        hf, prompt, ref_tokens[:i], sae, layer, edit.zero, edit.inject)), model.config)
    assert ours != plain, "the edit changed nothing, so the equality above shows nothing"
    out.update(edited_tokens=ours, plain_tokens=plain, positive_scores=int((got.gradsae > 0).sum()))

    # Remote request building: a meta model, nothing sent. Offline, the Hub's canonical id for the repo
    # (nnsight asks `HfApi().model_info`) is supplied as the id itself.
    from nnsight.modeling import huggingface

    huggingface._ID_CACHE[built["model"]] = built["model"]
    remote = load_model(built["model"], remote=RemoteOptions(host="http://127.0.0.1:9"))
    module = remote.layer(layer)
    plan = plan_generation(remote, sae, [prompt], [edit], 8)
    out["request_bytes"] = {
        "scoring": request_bytes(remote, grad_trace, [(remote.lm, module, build_batch([example], 0), "answer-logprob")],
                                 True),
        "edit_sliced": request_bytes(remote, generate_trace, [(remote.lm, module, plan)], True)}
    sae_bytes = sum(getattr(sae, n).numel() * 4 for n in ("W_enc", "W_dec"))
    assert out["request_bytes"]["edit_sliced"] < sae_bytes / 10, "the sliced edit's request carries the whole SAE"
    return out


if __name__ == "__main__":
    print(json.dumps(check(json.loads(sys.argv[1]))))
