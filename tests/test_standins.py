"""The large-model path at true shapes, offline: small stand-ins of `google/gemma-2-9b-it` + Gemma Scope and
`meta-llama/Llama-3.1-8B` + Llama Scope (benchmarks/standins.py) resolve by their hub names through
transformers and SAELens's own registry and converters, and score, edit and build remote requests as the
plain-PyTorch reference says (tests/standin_worker.py, run in a process whose HF_HOME is the stand-in cache)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.standins import STANDINS, build, hub_env

WORKER = Path(__file__).with_name("standin_worker.py")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return tmp_path_factory.mktemp("hf_home")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STANDINS))
def test_standin_runs_through_the_real_loading_paths(hub, name):
    built = build(hub, name, small=True)
    spec = STANDINS[name]
    assert built.model == spec.repo_id and built.sae.startswith(spec.sae_release + ":")
    assert built.n_layers == spec.sae_layer + 2
    proc = subprocess.run([sys.executable, str(WORKER), json.dumps(built.__dict__)], env=built.env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["gradsae_error_trace"] <= out["gradsae_tol"] and out["gradsae_error_x-grad"] <= out["gradsae_tol"]
    assert out["positive_scores"] > 0 and out["edited_tokens"] != out["plain_tokens"]
    # a base model is prompted few-shot; Gemma 2 IT through its chat markup
    assert out["prompt_style"] == ("chat" if spec.chat_template else "few-shot")
    assert 0 < out["request_bytes"]["scoring"] and 0 < out["request_bytes"]["edit_sliced"]


def test_standin_names_resolve_in_saelens_registry():
    """The SAE ids the stand-ins write are in SAELens's registry, at the layer the stand-in assumes."""
    from benchmarks.standins import registry_location

    for spec in STANDINS.values():
        for sae_id in (spec.sae_id, spec.small_sae[0]):
            repo, folder = registry_location(spec.sae_release, sae_id)
            assert repo and (f"layer_{spec.sae_layer}/" in folder or f"-L{spec.sae_layer}R-" in folder), folder


def test_hub_env_is_offline(tmp_path):
    env = hub_env(tmp_path)
    assert env["HF_HOME"] == str(tmp_path) and env["HF_HUB_OFFLINE"] == "1"
