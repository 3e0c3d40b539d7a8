"""SAE training end to end (tiny): activations → SAELens SAETrainer → folded inference SAE → card."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_sae_script_end_to_end(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"context": f"Paragraph {i} about the history of the city of Paris, "
                                            f"its rivers, bridges and {i * 7} museums."}) for i in range(200)))
    out = tmp_path / "saes"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "train_sae.py"), "--layer", "2", "4",
                           "--width", "256", "--tokens", "2048", "--batch-size", "256", "--context-size", "32",
                           "--eval-tokens", "100", "--corpus", str(corpus), "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for layer in (2, 4):
        folder = out / "smollm2-135m-it" / f"L{layer}"
        card = json.loads((folder / "gradsae_card.json").read_text())
        assert card["training"]["layer"] == layer and card["training"]["tokens"] == 2048
        assert card["training"]["corpus_sha256"] != ""
        assert "train_sae.py" in card["command"]
        cfg = json.loads((folder / "cfg.json").read_text())
        assert cfg["d_sae"] == 256 and cfg["normalize_activations"] == "none"  # scale folded into the weights
        assert cfg["metadata"]["hook_name"] == f"blocks.{layer}.hook_resid_post"


def test_train_sae_refuses_missing_corpus(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "train_sae.py"), "--layer", "2", "--corpus",
                           str(tmp_path / "none.jsonl"), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "not found" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
