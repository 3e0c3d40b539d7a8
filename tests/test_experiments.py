"""The experiment scripts end to end on a tiny random Llama (2 layers, d_model 64) and a random SAE.

The tiny model answers nothing correctly, so `--correct-f1 0` makes every answered question "correct":
these tests are about wiring (selection → edit → generation → metric), outputs, resume and bad input;
the method's numerics are checked against plain PyTorch in test_core.
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
from gradsae_nn.runs.overlap import overlap
from gradsae_nn.runs.pipeline import Item
from gradsae_nn.core.scoring import score_examples
from gradsae_nn.core.selection import select
from gradsae_nn.core.edits import LatentEdit
from gradsae_nn.data.squad import QAExample
from gradsae_nn.runs.steering import choose_partners
from gradsae_nn.core.targets import ScoringInput

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import perturb  # noqa: E402
import stats  # noqa: E402
import steer  # noqa: E402


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


def test_stats_overlaps(workdir, tiny_model_dir, tiny_sae_dir):
    out = workdir / "t"
    assert stats.main(base_args(tiny_model_dir, tiny_sae_dir, out, "--n-correct", "6")) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_examples"] == 6 and summary["n_pairs"] >= 1
    for key in ("cross_top", "cross_bottom", "inner_top_gradsae", "inner_top_baseline"):
        assert 0.0 <= summary[key] <= 100.0
    assert "inner overlap TopK, GradSAE" in (out / "table.md").read_text()


def test_overlap_definition():
    assert overlap([1, 2, 3, 4], [3, 4]) == 1.0
    assert overlap([1, 2], [3, 4]) == 0.0
    assert overlap([1, 2, 3, 4], [4, 5, 6, 7]) == 0.25


def _item(qid, context, correct=True):
    example = QAExample(qid, "t", context, f"q{qid}", ("a",))
    return Item(example, {"em": 1.0 if correct else 0.0, "f1": 1.0 if correct else 0.0}, (1, 2), (3,))


def test_partner_choice_is_seeded_and_never_self():
    pool = {it.id: it for it in [_item(f"a{i}", "ctx-a") for i in range(5)] + [_item("b0", "ctx-b"),
                                                                                _item("c0", "ctx-c"),
                                                                                _item("c1", "ctx-c", correct=False)]}
    items = list(pool.values())
    first = choose_partners(items, pool, seed=42)
    assert first == choose_partners(list(reversed(items)), pool, seed=42)  # order does not matter
    assert first == choose_partners(items[:2], pool, seed=42) | {k: v for k, v in first.items() if k not in ("a0", "a1")}
    assert all(partner != qid for qid, partner in first.items())
    assert first["b0"] is None                      # alone on its context
    assert first["c0"] is None                      # its only neighbour was answered wrongly
    assert choose_partners(items, pool, seed=42, partners="any")["c0"] == "c1"
    seeds = {tuple(sorted(choose_partners(items, pool, seed=s).items(), key=str)) for s in range(10)}
    assert len(seeds) > 1                           # the seed matters


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
