"""The run explorer (`report.html`, `gradsae_nn/results/explore.py`) opened in a real browser: headless Chromium
driven by Selenium through Debian's chromedriver. If the browser is missing the test fails and says how to
install it: it is never skipped."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from conftest import TINY_LAYER, save_tiny_llama, save_tiny_sae
from gradsae_nn.core.sae import shipped_sae_names
from faults import small

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
import perturb  # noqa: E402

INSTALL = "apt-get install -y chromium chromium-driver (README, 'Install and run'), and pip install -e '.[test]'"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small perturbation run of a random tiny model: its folder, with report.html written by the run."""
    from gradsae_nn.models import load_model

    model_dir = save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    sae_dir = save_tiny_sae(load_model(str(model_dir), device="cpu"), tmp_path_factory.mktemp("tiny-sae"), TINY_LAYER)
    out = tmp_path_factory.mktemp("run") / "p"
    assert perturb.main(small((str(model_dir), str(sae_dir)), "--out", str(out), "--n-correct", "3",
                              "--answers", str(out.parent / "answers"))) == 0
    return out


@pytest.fixture(scope="module")
def browser():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {INSTALL}", pytrace=False)
    if not chromium or not chromedriver:
        pytest.fail(f"Chromium or chromedriver is not on PATH: {INSTALL}", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


def test_report_is_self_contained(run_dir):
    page = (run_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)   # no CDN, no remote asset
    assert "data:image/png;base64," in page                                # the plot is embedded


def test_report_in_a_real_browser(run_dir, browser, tmp_path):
    from selenium.webdriver.common.by import By

    records = [json.loads(line) for line in (run_dir / "examples.jsonl").read_text().splitlines()]
    tokens = {r["id"]: r for r in map(json.loads, (run_dir / "tokens.jsonl").read_text().splitlines())}
    browser.get((run_dir / "report.html").as_uri())
    assert browser.find_elements(By.CSS_SELECTOR, "#overview table")                  # configuration and summary
    browser.find_element(By.CSS_SELECTOR, "nav button[data-section=examples]").click()
    rows = browser.find_elements(By.CSS_SELECTOR, ".example-row")
    assert len(rows) == len(records)
    rows[0].click()
    first = records[0]["id"] if rows[0].get_attribute("data-id") == records[0]["id"] else rows[0].get_attribute("data-id")
    latent_rows = browser.find_elements(By.CSS_SELECTOR, ".latent-row")
    assert len(latent_rows) == len(tokens[first]["latents"]) >= 2

    def shading() -> list[str]:
        """Each token's colour and its value (the tooltip): a random tiny model's latents often fire on the same
        single token, so the colours alone may coincide."""
        return [f"{t.get_attribute('style')} {t.get_attribute('title')}"
                for t in browser.find_elements(By.CSS_SELECTOR, "#tokens .tok")]

    before = shading()
    assert any("background-color" in s for s in before)                               # the first latent is shown
    latent_rows[1].click()
    after = shading()
    assert after != before                                                             # another latent, other shading
    browser.find_element(By.CSS_SELECTOR, "input[name=mode][value=activation]").click()
    assert shading() != after                                                          # activation vs contribution
    outputs = browser.find_elements(By.XPATH, "//h3[contains(., 'Generated answer')]/following-sibling::table[1]//tr")
    assert len(outputs) == 1 + len(records[0]["outputs"])
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    shot = tmp_path / "explore.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000


def test_top_contexts_equal_a_plain_loop(tmp_path):
    """Each latent's best activations, one per sequence, against an unbatched forward hook per sequence."""
    import torch

    from gradsae_nn.models import load_model
    from gradsae_nn.training.contexts import top_activations
    from reference import sae_encode
    from tolerance import network_rtol

    model = load_model(str(save_tiny_llama(tmp_path / "m")), device="cpu")
    sae_dir = save_tiny_sae(model, tmp_path / "s", TINY_LAYER)
    from gradsae_nn.core.sae import load_sae

    sae = load_sae(str(sae_dir), model, TINY_LAYER)
    texts = ["The river flows north.", "Paris is the capital of France, said the guide.", "Rome is old.", "A long day."]
    sequences = [model.tokenizer(t)["input_ids"] for t in texts]
    values, where = top_activations(model, sae, TINY_LAYER, sequences, per_latent=2, batch_size=3)
    best = torch.zeros(len(sequences), sae.cfg.d_sae)
    argbest = torch.zeros(len(sequences), sae.cfg.d_sae, dtype=torch.long)
    hf = model.lm._module
    for i, ids in enumerate(sequences):
        store = {}
        handle = hf.model.layers[TINY_LAYER].register_forward_hook(
            lambda _m, _i, out: store.__setitem__("x", out[0] if isinstance(out, tuple) else out))
        with torch.no_grad():
            hf(torch.tensor([ids]))
        handle.remove()
        h = sae_encode(sae, store["x"][0, 1:])                                  # position 0 never counted
        best[i], argbest[i] = h.max(0).values, h.max(0).indices + 1
    expected, order = best.T.topk(2, dim=1)                                     # [d_sae, 2]
    fired = expected[:, 0] > 0
    assert fired.sum() > 10
    # one forward pass, batched and left-padded vs alone: within the network's rounding (tests/tolerance.py)
    tol = network_rtol(model.config) * float(expected.abs().max())
    assert (values[fired] - expected[fired]).abs().max() <= tol
    for c in torch.nonzero(fired).flatten()[:50].tolist():
        s = int(order[c, 0])
        assert tuple(where[c, 0].tolist()) == (s, int(argbest[s, c]))


@pytest.mark.parametrize("name", shipped_sae_names())
def test_every_shipped_sae_carries_its_own_top_contexts(name):
    """README: every shipped SAE carries `top_contexts.json.gz` (experiments/sae_contexts.py), made with that
    SAE: latent ids within its width, each latent's contexts positive, best first, at most `per_latent`."""
    import gzip

    from gradsae_nn.core.sae import shipped_sae_root

    root = shipped_sae_root() / name
    d_sae = json.loads((root / "cfg.json").read_text())["d_sae"]
    path = root / "top_contexts.json.gz"
    assert path.is_file(), f"no {path}: python experiments/sae_contexts.py --sae {name}"
    payload = json.loads(gzip.decompress(path.read_bytes()))
    assert f"--sae {name}" in payload["command"]
    latents = payload["latents"]
    assert payload["latents_fired"] == len(latents) > 0
    assert all(0 <= int(k) < d_sae for k in latents)
    for contexts in latents.values():
        values = [v for _, v in contexts]
        assert 0 < len(values) <= payload["per_latent"] and min(values) > 0 and values == sorted(values, reverse=True)
