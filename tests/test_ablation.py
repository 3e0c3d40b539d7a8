"""The protocol ablation: each piece's run is exactly the perturbation with the piece's flags, and the tables
pair each piece's run with the project preset's on the examples both hold."""

import json
import sys
from pathlib import Path

import pytest

from gradsae_nn.cli import parse
from gradsae_nn.config import PerturbConfig, ProtocolAblationConfig
from gradsae_nn.config.presets import PIECES, PRESETS, piece_flags
from gradsae_nn.errors import OptionError
from gradsae_nn.results.ablation import PieceRun, ablation_markdown, ablation_rows, largest_moves, setting_keys

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import perturb  # noqa: E402
import protocol_ablation  # noqa: E402

BASE = ["--model", "qwen2.5-coder-0.5b-it", "--n-correct", "30", "--k", "10", "50%"]


@pytest.mark.parametrize("piece", sorted(PIECES))
def test_each_piece_is_the_perturbation_with_its_flags(piece):
    ablation = parse(ProtocolAblationConfig, [*BASE, "--pieces", piece], "doc")
    assert ablation.perturbation() == parse(PerturbConfig, BASE, "doc")
    with_piece = ablation.perturbation(piece)
    assert with_piece == parse(PerturbConfig, [*BASE, *piece_flags(piece).split()], "doc")
    flat = with_piece.flat()
    for name in PIECES[piece]:   # every option of the piece at the authors' value (include-bos: on)
        assert flat[name] == (True if name == "include_bos" else PRESETS["authors"][name])
    assert flat["protocol"] == "project"


@pytest.mark.parametrize("argv, message", [
    (["--pieces", "splice", "splice"], "--pieces must name distinct pieces"),
    (["--splice", "reconstruct", "--pieces", "splice"], "piece splice (--splice reconstruct) is already set"),
    (["--protocol", "authors"], "drop --protocol/--out"),
    (["--out", "x"], "drop --protocol/--out"),
])
def test_bad_ablation_options_are_refused(argv, message):
    with pytest.raises(OptionError) as info:
        parse(ProtocolAblationConfig, argv, "doc")
    assert message in info.value.for_cli()


def record(qid, em):
    """A perturbation record with EM (= F1) per setting."""
    return {"id": qid, "outputs": {key: {"em": value, "f1": value} for key, value in em.items()}}


def test_rows_pair_shared_examples_only():
    keys = ["none", "gradsae/top/1"]
    reference = [record("a", {"none": 1, "gradsae/top/1": 1}), record("b", {"none": 1, "gradsae/top/1": 0}),
                 record("c", {"none": 1, "gradsae/top/1": 1})]
    # the piece keeps a and b, loses c from its correct set and adds d (which must not be compared)
    piece = [record("b", {"none": 1, "gradsae/top/1": 1}), record("a", {"none": 0, "gradsae/top/1": 0}),
             record("d", {"none": 0, "gradsae/top/1": 0})]
    rows = ablation_rows(reference, [PieceRun("--x", piece)], keys, "em")
    assert rows[0] == ["project preset (reference)", "3", "100.0", "66.7"]
    label, n, none, top = rows[1]
    assert (label, n) == ("--x", "2 of 3")
    assert none.startswith("50.0; Δ -50.00 [")          # a: 1 → 0, b: 1 → 1
    assert top.startswith("50.0; Δ 0.00 [")             # a: 1 → 0, b: 0 → 1
    assert largest_moves(reference, [PieceRun("--x", piece)], keys) == [("--x", "w/o task", -50.0)]
    # a piece sharing under half the reference's examples is not ranked, and its own means are reported instead
    other = [record("d", {"none": 1, "gradsae/top/1": 0}), record("a", {"none": 1, "gradsae/top/1": 0})]
    assert largest_moves(reference, [PieceRun("--y", other)], keys) == []
    text = ablation_markdown("t", reference, [PieceRun("--y", other)], keys)
    assert "--y shares 1 of its 2 examples with the reference, so it is not ranked; its own EM on all of them: " \
           "w/o task 100.0, GradSAE TopK↓ K=1 0.0." in text


def test_setting_keys_follow_the_table_order():
    assert setting_keys(["10"], ["gradsae", "baseline"]) == [
        "none", "baseline/top/10", "baseline/bottom/10", "gradsae/top/10", "gradsae/bottom/10"]


def test_ablation_end_to_end_resumes_the_perturbation_runs(tiny_dirs, tmp_path, monkeypatch):
    """On the tiny model: the reference and piece runs land in perturb.py's own folders (a prior perturb.py run
    with the piece's flags is resumed, not redone), and the table compares them."""
    monkeypatch.chdir(tmp_path)
    model_dir, sae_dir = tiny_dirs
    base = ["--model", str(model_dir), "--sae", str(sae_dir), "--limit", "12", "--n-correct", "3",
            "--correct-f1", "0", "--max-new-tokens", "4", "--k", "1"]
    assert perturb.main([*base, "--include-bos"]) == 0
    piece_dir = next(Path("results/perturb").iterdir())
    before = (piece_dir / "examples.jsonl").read_text()
    assert protocol_ablation.main([*base, "--pieces", "include-bos", "splice"]) == 0
    assert (piece_dir / "examples.jsonl").read_text() == before          # resumed: nothing regenerated
    folders = sorted(p.name for p in Path("results/perturb").iterdir())
    assert len(folders) == 3 and any("splice_reconstruct" in f for f in folders)
    out, = Path("results/protocol_ablation").iterdir()
    assert out.name == min(folders, key=len) + "-pieces_include-bos_splice"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_reference"] == 3 and set(summary["folders"]) == {"reference", "include-bos", "splice"}
    table = (out / "table.md").read_text()
    assert "| --include-bos | 3 of 3 |" in table and "| --splice reconstruct | 3 of 3 |" in table
    reference = [json.loads(line) for line in (Path(summary["folders"]["reference"]) / "examples.jsonl").open()]
    assert table == ablation_markdown(table.splitlines()[0][3:], reference, [
        PieceRun(piece_flags(p), [json.loads(line) for line in (Path(summary["folders"][p]) / "examples.jsonl").open()])
        for p in ("include-bos", "splice")], setting_keys(["1"], ["gradsae", "baseline"]))
