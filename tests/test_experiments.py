"""The experiment scripts end to end on a tiny random Llama (2 layers, d_model 64) and a random SAE.

The tiny model answers nothing correctly, so `--correct-f1 0` makes every answered question "correct":
these tests are about wiring (selection → edit → generation → metric), outputs, resume and bad input;
the method's numerics are checked against plain PyTorch in test_core and test_edits.
"""

import csv
import json
import sys
from pathlib import Path

import pytest

from conftest import save_tiny_llama, save_tiny_sae, TINY_LAYER
from gradsae_nn.cli import run
from gradsae_nn.core.editing import edited_generate
from gradsae_nn.data.metrics import qa_score
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.selection import select
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.core.targets import ScoringInput

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import perturb  # noqa: E402
import stats  # noqa: E402
import steer  # noqa: E402
import steer_sweep  # noqa: E402
import faithfulness  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer (and chat template), saved as an HF folder."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from gradsae_nn.models import load_model

    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def tiny_sae_dir(tiny, tmp_path_factory):
    return save_tiny_sae(tiny, tmp_path_factory.mktemp("tiny-sae"), TINY_LAYER)


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the answer cache goes under ./results
    return tmp_path


def base_args(model_dir, sae_dir, out, *extra):
    return ["--model", str(model_dir), "--sae", str(sae_dir), "--limit", "12", "--n-correct", "3",
            "--correct-f1", "0", "--max-new-tokens", "4", "--out", str(out), *extra]


def test_perturb_outputs_and_wiring(workdir, tiny, tiny_model_dir, tiny_sae_dir):
    out = workdir / "p"
    assert perturb.main(base_args(tiny_model_dir, tiny_sae_dir, out, "--k", "1", "50%")) == 0
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert len(records) == 3
    keys = {"none"} | {f"{m}/{w}/{k}" for m in ("gradsae", "baseline") for w in ("top", "bottom") for k in ("1", "50%")}
    for record in records:
        assert set(record["outputs"]) == keys
        assert set(record["selections"]) == keys - {"none"}
        for key, sel in record["selections"].items():
            assert len(sel["latents"]) == (1 if key.endswith("/1") else sel["k_wanted"]) or sel["truncated"]
        for output in record["outputs"].values():
            assert (output["em"], output["f1"]) == qa_score(output["prediction"], record["golds"])

    # the recorded selection is the TopK of a fresh scoring, and its recorded output is what a lone
    # generation with exactly that edit produces
    from gradsae_nn.core.sae import load_sae
    from gradsae_nn.data.prompts import get_template, prompt_ids
    from gradsae_nn.data.squad import load_squad, to_examples
    from gradsae_nn.core.targets import answer_token_ids
    from gradsae_nn.core.generation import extract_answer

    sae = load_sae(str(tiny_sae_dir), tiny, TINY_LAYER)
    record = records[0]
    example = next(ex for ex in to_examples(load_squad()) if ex.id == record["id"])
    answers = {json.loads(line)["id"]: json.loads(line) for line in
               next(workdir.glob("results/answer/*/predictions.jsonl")).read_text().splitlines()}
    prompt = tuple(prompt_ids(tiny, get_template(None, tiny), example))
    answer = answer_token_ids(answers[record["id"]]["completion_ids"], tiny.tokenizer)
    (scores,) = score_examples(tiny, sae, TINY_LAYER, [ScoringInput(prompt, answer)])
    top = select(scores.gradsae, "50%", "top", scores.n_active_last)
    assert list(top.latents) == record["selections"]["gradsae/top/50%"]["latents"]
    (ids,) = edited_generate(tiny, sae, TINY_LAYER, [prompt], [LatentEdit(zero=top.latents)], 4)
    assert extract_answer(tiny.tokenizer.decode(ids, skip_special_tokens=True)) == \
        record["outputs"]["gradsae/top/50%"]["prediction"]

    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_examples"] == 3 and summary["settings"]["none"]["em"]["n"] == 3
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert len(rows) == 2 * (1 + 8)
    assert "GradSAE TopK↓" in (out / "table.md").read_text()
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["ended"] and manifest["sae"]["weights_sha256"] and manifest["options"]["k"] == ["1", "50%"]


def test_perturb_resume_after_interrupt_matches_uninterrupted(workdir, tiny_model_dir, tiny_sae_dir, monkeypatch):
    import gradsae_nn.runs.jobs as jobs

    args = ["--k", "1", "10", "--gen-batch-size", "9"]  # one example (9 generations) per generate call
    assert perturb.main(base_args(tiny_model_dir, tiny_sae_dir, workdir / "whole", *args)) == 0

    real_run_groups, calls = jobs._run_groups, []

    def interrupted(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second example generates
        return real_run_groups(*a, **kw)

    monkeypatch.setattr(jobs, "_run_groups", interrupted)
    out = workdir / "resumed"
    with pytest.raises(KeyboardInterrupt):
        perturb.main(base_args(tiny_model_dir, tiny_sae_dir, out, *args))
    assert len((out / "examples.jsonl").read_text().splitlines()) == 1  # the finished example survived
    monkeypatch.setattr(jobs, "_run_groups", real_run_groups)
    assert perturb.main(base_args(tiny_model_dir, tiny_sae_dir, out, *args)) == 0
    assert len((out / "examples.jsonl").read_text().splitlines()) == 3
    for name in ("table.md", "table.csv"):
        assert (out / name).read_text() == (workdir / "whole" / name).read_text()


def test_steer_injects_partner_latents(workdir, tiny_model_dir, tiny_sae_dir):
    out = workdir / "s"
    argv = base_args(tiny_model_dir, tiny_sae_dir, out, "--k", "1", "--partners", "any", "--n-correct", "4")
    assert steer.main(argv) == 0
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert records and all(r["partner_id"] != r["id"] for r in records)
    for record in records:
        sel = record["selections"]["gradsae/top/1"]
        assert sel["own"]["latents"] and sel["injected"]["latents"]
        none = record["outputs"]["none"]
        assert (none["em"], none["f1"]) == qa_score(record["answer"], record["partner_golds"])
    assert json.loads((out / "summary.json").read_text())["n_examples"] == len(records)


def test_perturb_with_every_method(workdir, tiny_model_dir, tiny_sae_dir):
    """`--methods`: one table block per method, the same zeroing for each, and a ranking line per K."""
    out = workdir / "p-methods"
    methods = ["gradsae", "baseline", "attribution", "integrated-gradients", "exact"]
    argv = base_args(tiny_model_dir, tiny_sae_dir, out, "--k", "1", "--methods", *methods, "--ig-steps", "2",
                     "--exact-candidates", "3")
    assert perturb.main(argv) == 0
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    for record in records:
        assert {key.split("/")[0] for key in record["outputs"] if key != "none"} == set(methods)
    table = (out / "table.md").read_text()
    for label in ("Attribution TopK↓", "Integrated gradients BottomK↑", "Exact ablation TopK↓"):
        assert label in table
    assert "K=1: TopK EM" in table
    assert "Paired differences, F1" in table and "| GradSAE − Exact ablation, TopK |" in table


def test_faithfulness_records_and_table(workdir, tiny_model_dir, tiny_sae_dir, capsys):
    out = workdir / "faith"
    argv = base_args(tiny_model_dir, tiny_sae_dir, out, "--ig-steps", "2", "--exact-candidates", "4")
    assert faithfulness.main(argv) == 0
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert records
    for record in records:
        assert len(record["exact"]) == len(record["candidates"]) <= 4 * 4
        assert set(record["scores"]) == {"gradsae", "baseline", "attribution", "integrated-gradients"}
        assert set(record["metrics"]) == set(record["scores"]) | {"exact"}
    table = (out / "table.md").read_text()
    assert "Spearman vs exact" in table and "by answer length" in table and (out / "plot.png").exists()
    code, err = _run_main(faithfulness.main, [*argv[:-4], "--methods", "gradsae", "baseline"], capsys)
    assert code == 2 and "exact" in err


def test_steer_default_partners_start_at_zero(workdir, tiny_model_dir, tiny_sae_dir):
    """The default pool: the unsteered answer never scores against the partner's golds; every output says how
    much of the own answer survived and whether it broke."""
    out = workdir / "s-different"
    assert steer.main(base_args(tiny_model_dir, tiny_sae_dir, out, "--k", "1", "--value-scale", "2")) == 0
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert records and all(r["partner_teacher_forced"] for r in records)
    for record in records:
        assert record["outputs"]["none"]["f1"] == 0.0
        assert qa_score(record["partner_answer"], record["partner_golds"]).em == 1.0
        for output in record["outputs"].values():
            assert {"own_em", "own_f1", "broken"} <= set(output)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_examples"] == len(records) and "n_filtered_out" in summary


def test_steer_sweep_cells_controls_and_resume(workdir, tiny_model_dir, tiny_sae_dir):
    """Every (method, variant, K, scale) cell per pair; its swap ×1 cell is exactly steer.py's output; the random
    control injects latents active in the partner; a rerun resumes to the same table."""
    out, plain = workdir / "sweep", workdir / "sweep-steer"
    args = ["--k", "1", "--n-correct", "4"]
    assert steer_sweep.main(base_args(tiny_model_dir, tiny_sae_dir, out, *args, "--value-scales", "1", "4")) == 0
    assert steer.main(base_args(tiny_model_dir, tiny_sae_dir, plain, *args)) == 0
    records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    steered = {r["id"]: r for r in map(json.loads, (plain / "examples.jsonl").read_text().splitlines())}
    keys = {f"{m}/{v}/1/x{s}" for m in ("gradsae", "baseline") for v in ("swap", "inject-only", "random") for s in (1, 4)}
    assert records and steered.keys() == {r["id"] for r in records}
    for record in records:
        assert set(record["outputs"]) == keys | {"none"}
        for method in ("gradsae", "baseline"):
            assert record["outputs"][f"{method}/swap/1/x1"] == steered[record["id"]]["outputs"][f"{method}/top/1"]
        sel = record["selections"]["gradsae/random/1/x4"]
        assert len(sel["random"]) == len(sel["injected"]["latents"])
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["comparison"]) == {"1"} and summary["comparison"]["1"]["n_A"] + summary["comparison"]["1"]["n_B"] == len(records)
    assert (out / "dose.png").stat().st_size > 0 and (out / "frontier.png").stat().st_size > 0
    table = (out / "table.md").read_text()
    assert steer_sweep.main(base_args(tiny_model_dir, tiny_sae_dir, out, *args, "--value-scales", "1", "4")) == 0
    assert (out / "table.md").read_text() == table


def test_stats_overlaps(workdir, tiny_model_dir, tiny_sae_dir):
    out = workdir / "t"
    assert stats.main(base_args(tiny_model_dir, tiny_sae_dir, out, "--n-correct", "6")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_examples"] == 6 and summary["n_pairs"] >= 1
    for key in ("cross_top", "cross_bottom", "inner_top_gradsae", "inner_top_baseline"):
        assert 0.0 <= summary[key] <= 100.0
    assert "inner overlap TopK, GradSAE" in (out / "table.md").read_text()


@pytest.mark.parametrize("model_name", ["smollm", "gemma"])
def test_gold_answer_ids_continue_the_prompt_as_the_model_does(model_name, request, dev_examples):
    """A partner's teacher-forced Y: had the model answered exactly a question's first gold answer, its answer
    tokens would be the gold's tokens. Checked on the model's own answers (chat: SmolLM2; few-shot: gemma)."""
    import dataclasses

    from gradsae_nn.core.generation import greedy_generate
    from gradsae_nn.core.targets import answer_token_ids
    from gradsae_nn.data.prompts import get_template, prompt_ids
    from gradsae_nn.runs.partners import gold_answer_ids

    model = request.getfixturevalue(model_name)
    template = get_template(None, model)
    chosen = dev_examples[:6]
    completions = greedy_generate(model, [prompt_ids(model, template, ex) for ex in chosen], 12)
    checked = 0
    for ex, completion in zip(chosen, completions):
        answer = answer_token_ids(completion, model.tokenizer)
        text = model.tokenizer.decode(answer)
        if answer and text.strip() and text.strip() == text.lstrip():     # the answer as a gold string
            as_gold = dataclasses.replace(ex, answers=(text.strip(),))
            assert gold_answer_ids(model, template, as_gold) == answer, (text, model_name)
            checked += 1
    assert checked >= 3


def _run_main(main, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(lambda: main(argv))
    err = capsys.readouterr().err.strip()
    return exit_info.value.code, err


@pytest.mark.parametrize("k", ["0", "abc", "150%", "-3"])
def test_bad_k_is_one_line(workdir, tiny_model_dir, tiny_sae_dir, capsys, k):
    code, err = _run_main(perturb.main, base_args(tiny_model_dir, tiny_sae_dir, workdir / "x", "--k", k), capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "K" in err


def test_sae_of_another_model_is_refused(workdir, tiny_model_dir, capsys):
    code, err = _run_main(perturb.main, ["--model", str(tiny_model_dir), "--sae", "smollm2-135m-it/L15",
                                         "--out", str(workdir / "x")], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "d_in 576" in err and "d_model 64" in err


def test_empty_correct_set_says_raise_limit(workdir, tiny_model_dir, tiny_sae_dir, capsys):
    argv = ["--model", str(tiny_model_dir), "--sae", str(tiny_sae_dir), "--limit", "5", "--max-new-tokens", "4",
            "--out", str(workdir / "x")]
    code, err = _run_main(perturb.main, argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "no correctly answered examples in the first 5 questions; raise --limit" in err
