"""Fault injection, runs and outputs: the answer cache, folders and locks, refused runs, bad options, damaged
results, what tables say (helpers in `faults.py`; bad inputs in `test_faults_inputs.py`, servers in
`test_faults_remote.py`). The cases that already held are kept so they stay held."""

import json
import os
from pathlib import Path

import pytest

from faults import one_line_error, script, small
from gradsae_nn.results.records import FolderLock


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
    args = small(tiny_dirs, "--out", out, "--partners", "correct")
    args[args.index("--limit") + 1] = "1"                # one question: nobody to pair with
    proc = script("steer", *args, cwd=tmp_path)
    message = one_line_error(proc, 2, "raise --n-correct/--limit", "--partners different")
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


def test_n_correct_counts_only_examples_that_can_be_scored(monkeypatch):
    """A correct answer without answer tokens (e.g. no format token) is counted apart, and the search answers
    more questions until `n_correct` scorable ones are found (it used to stop one short: 99 of 100)."""
    from gradsae_nn.runs import pipeline

    examples = [f"q{i}" for i in range(2 * pipeline.ANSWER_CHUNK)]
    answered_up_to = []

    def fake_answers(model, template, examples_so_far, *args, **kwargs):
        answered_up_to.append(len(examples_so_far))
        return [{"id": q, "em": 1.0, "f1": 1.0} for q in examples_so_far], None

    monkeypatch.setattr(pipeline, "run_answers", fake_answers)
    # every question is answered correctly, but the first chunk's answers but one cannot be scored
    monkeypatch.setattr(pipeline, "scored_answer_ids", lambda model, r, target: () if r["id"] != "q0"
                        and int(r["id"][1:]) < pipeline.ANSWER_CHUNK else (7,))
    correct, records, unscorable = pipeline.find_correct(None, None, examples, None, None, 2, 1, None)
    assert [r["id"] for r in correct] == ["q0", f"q{pipeline.ANSWER_CHUNK}"]
    assert answered_up_to == [pipeline.ANSWER_CHUNK, 2 * pipeline.ANSWER_CHUNK] and len(records) == len(examples)
    assert unscorable == pipeline.ANSWER_CHUNK - 1


def test_sigterm_runs_the_scripts_cleanup_and_exits_143(tmp_path):
    """Under `cli.run` SIGTERM unwinds like Ctrl-C (`finally` blocks run: the checkpoint an interrupted
    collection writes, released locks), says how to resume, and exits 143 (128 + SIGTERM)."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, signal, time
        from gradsae_nn.cli import run

        def main():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(60)
            finally:
                print("cleanup ran", flush=True)

        run(main)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 143, done.stderr[-2000:]
    assert done.stdout == "cleanup ran\n"
    assert "rerun the same command to resume" in done.stderr
