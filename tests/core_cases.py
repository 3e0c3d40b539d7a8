"""The cases the core's ground-truth checks share (tests/test_core.py: splice and scores; tests/test_edits.py:
edits): the real embedded SmolLM2-135M-Instruct with random SAELens SAEs of each architecture
(`conftest.make_sae`) scaled to its residual stream, so the checks are about the mechanics, plus its default
shipped (trained) SAE; and, for the splice, scores and edits checks, the Qwen 0.5B with its default shipped SAE
(`with_qwen`, `qwen` mark). Test modules import the fixtures by name.
"""

import pytest
import torch

from conftest import MODEL_FIXTURES, make_sae
from gradsae_nn.core.sae import DEFAULT_SAE_LAYER, hook_layer, load_sae, shipped_sae_names
from gradsae_nn.core.targets import ScoringInput

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


# the default trained SAE; every shipped SAE's own quality is checked in test_sae_quality
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
