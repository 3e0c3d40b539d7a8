"""The benchmark suite (`benchmarks/run.py`) end to end in a tiny configuration, so it cannot rot.

A random 2-layer Llama (SmolLM2's tokenizer) and a random SAE; 1 repeat, 2 new tokens, batch 2, 3 ablated
latents. The numbers mean nothing here: the test checks that every row of issue 7 is in the Markdown
with a number or an explicit "not measured" reason, and that rows 7c and 8 read what they should.
"""

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import save_tiny_llama, save_tiny_sae

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import run  # noqa: E402
from benchmarks.ablation import precision_at, spearman  # noqa: E402
from benchmarks.timing import Timing, interleaved  # noqa: E402

ROWS = ["1", "2", "3", "3b", "4a", "4b", "4c", "5a", "5b", "6", "6b", "7a", "7b", "7c", "7d", "8", "9a", "9b", "10",
        "11"]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """A random 2-layer Llama saved as an HF folder, and a random SAELens SAE at its layer 1."""
    from gradsae_nn.models import load_model

    model_dir = save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    model = load_model(str(model_dir), device="cpu")
    return model_dir, save_tiny_sae(model, tmp_path_factory.mktemp("tiny-sae"))


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Cells of each results-table line, by row number."""
    out = {}
    for line in markdown.split("## Results", 1)[1].split("## Notes", 1)[0].splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if cells and cells[0] in ROWS:
            out[cells[0]] = cells
    return out


def test_suite_tiny_writes_every_row(tiny_dirs, tmp_path):
    from gradsae_nn.runs.outputs import run_dir

    model_dir, sae_dir = tiny_dirs
    # a finished default perturbation run for row 8 to read
    manifest = run_dir("perturb", str(model_dir), 1, {}, root=tmp_path / "results") / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"argv": [], "started": "2026-01-01T10:00:00+00:00",
                                    "ended": "2026-01-01T10:20:00+00:00", "seconds_total": 1200.0,
                                    "seconds_perturb": 1000.0, "n_examples": 50, "n_answered": 600,
                                    "git": {"commit": "abc123", "dirty": False}, "platform": "test"}))
    out = tmp_path / "benchmarks.md"
    assert run.main(["--model", str(model_dir), "--sae", str(sae_dir), "--device", "cpu", "--repeats", "1",
                     "--gen-tokens", "2", "--batch", "2", "--ablation-examples", "1", "--ablation-latents", "3",
                     "--memory-repeats", "1", "--results-dir", str(tmp_path / "results"), "--out", str(out),
                     "--note", "tiny test"]) == 0
    text = out.read_text()
    rows = table_rows(text)
    assert sorted(rows, key=ROWS.index) == ROWS
    for number, cells in rows.items():
        ratio, met = cells[5], cells[7]
        assert "failed" not in ratio, (number, ratio)
        assert re.search(r"\d", ratio) or (ratio.startswith("not measured:") and len(ratio) > 20), (number, ratio)
        assert met in ("yes", "**no**", "report", "not measured") or met.startswith("estimate"), (number, met)
    assert rows["7a"][5].startswith("not measured: pass --remote-host")  # no server given
    assert rows["7c"][3].endswith(" B") and rows["7c"][4].endswith(" B")
    assert int(rows["7c"][3][:-2].replace(",", "")) < int(rows["7c"][4][:-2].replace(",", ""))
    assert rows["7d"][3].endswith(" B") and rows["7d"][4] == "3.50 GiB"  # 131,072 × 3,584 fp32 encoder + decoder
    assert rows["8"][5].startswith("20.0 min, 0.042 ex/s") and rows["8"][7] == "yes"
    assert re.search(r"without GradSAE's per-token clamp \(Σ_n ∂T/∂h·h\) gets Spearman (-?\d|nan)", text)
    for heading in ("## Machine", "nnsight", "git commit", "tiny test", "## Against the goals"):
        assert heading in text


def test_interleaved_order_and_stats():
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3,
                    warmups={"b": lambda: calls.append("wb")})
    assert calls == ["a", "wb", "a", "b", "a", "b", "a", "b"]
    assert all(len(x.samples) == 3 for x in t.values())
    timing = Timing((1.0, 2.0, 3.0, 4.0, 100.0))
    assert timing.median == 3.0 and (timing.q1, timing.q3) == (2.0, 4.0)


def test_rank_agreement():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, abs=1e-6)  # ties: average ranks
    assert precision_at(2, [0.9, 0.8, 0.1, 0.0], [5, 0, 4, 0]) == 0.5


def test_row_8_refuses_a_rerun_that_perturbed_nothing(tmp_path):
    """A finished run rerun (everything resumed, nothing perturbed) has a manifest of seconds: row 8 must not
    read it as a 6-second default run."""
    from benchmarks.perturb_run import row_from_manifest
    from gradsae_nn.runs.outputs import run_dir

    manifest = run_dir("perturb", "smollm2-135m-it", 15, {}, root=tmp_path) / "manifest.json"
    manifest.parent.mkdir(parents=True)
    base = {"argv": [], "started": "2026-12-01T08:07:33+00:00", "ended": "2026-12-01T08:07:34+00:00",
            "n_examples": 50, "n_answered": 640, "git": {"commit": "abc", "dirty": False}}
    manifest.write_text(json.dumps({**base, "seconds_total": 6.6, "seconds_perturb": 0.0}))
    row = row_from_manifest(tmp_path, "smollm2-135m-it", 15)
    assert row.met == "not measured" and "perturbed nothing" in row.ratio
    manifest.write_text(json.dumps({**base, "seconds_total": 1200.0, "seconds_perturb": 1000.0}))
    assert row_from_manifest(tmp_path, "smollm2-135m-it", 15).met == "yes"
