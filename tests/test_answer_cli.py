"""experiments/answer.py end to end: interrupt + resume without duplicates, and one-line bad-input errors."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).resolve().parents[1] / "experiments" / "answer.py")


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout)


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_interrupt_then_resume_gives_every_example_once(tmp_path):
    out = tmp_path / "run"
    preds = out / "predictions.jsonl"
    args = ["--limit", "12", "--batch-size", "4", "--out", str(out), "--device", "cpu"]
    # A child inherits an ignored SIGINT from a harness started in the background (`cmd &` in a
    # non-interactive shell) and Python then installs no KeyboardInterrupt handler: restore the default, as
    # a terminal's Ctrl-C would find it.
    proc = subprocess.Popen([sys.executable, SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and (not preds.exists() or len(preds.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)          # Ctrl-C after the first batch has landed
    _, stderr = proc.communicate(timeout=120)
    first = _lines(preds)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    assert 4 <= len(first) < 12

    done = _run(*args)
    assert done.returncode == 0, done.stderr
    final = _lines(preds)
    assert len(final) == 12 and len({r["id"] for r in final}) == 12
    assert final[: len(first)] == first      # finished records untouched, only appended to
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 12 and summary["n_generated"] == 12 - len(first)

    again = _run(*args)                      # a complete cache: nothing regenerated, same file
    assert again.returncode == 0 and _lines(preds) == final
    assert json.loads((out / "summary.json").read_text())["n_generated"] == 0


@pytest.mark.slow
def test_resume_refuses_a_different_configuration(tmp_path):
    out = tmp_path / "run"
    assert _run("--limit", "2", "--out", str(out)).returncode == 0
    other = _run("--limit", "2", "--out", str(out), "--max-new-tokens", "8")
    assert other.returncode == 2
    assert other.stderr.strip().count("\n") == 0 and "differs in: max_new_tokens" in other.stderr


@pytest.mark.parametrize("args, needle", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--limit", "0"], "--limit must be a positive whole number, got 0"),
    (["--limit", "-3"], "--limit must be a positive whole number, got -3"),
    (["--limit", "ten"], "--limit: invalid int value: 'ten'"),
])
def test_bad_options_fail_in_one_line(tmp_path, args, needle):
    proc = _run(*args, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_bad_data_file_names_file(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    proc = _run("--data", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert str(bad) in proc.stderr and "not SQuAD v1.1 JSON" in proc.stderr
