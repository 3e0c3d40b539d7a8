"""Rebuild a run folder's `report.html` (the self-contained explorer page, `results/explore.py`), and optionally
photograph it in headless Chromium (needs `chromium`, `chromium-driver` and selenium, as the tests do).

    python -m gradsae_nn.explore results/perturb/smollm2-135m-it-L15
    python -m gradsae_nn.explore results/perturb/smollm2-135m-it-L15 --screenshot docs/images/explore.png
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .results.explore import build_report


def screenshot(report: Path, png: Path, example: int = 0, latent: int = 0) -> None:
    """Open `report` in headless Chromium, show example `example` with latent row `latent` selected, scroll its
    tokens to the most shaded one, and save the window as `png`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1250", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    try:
        driver.get(report.resolve().as_uri())
        driver.find_element(By.CSS_SELECTOR, "nav button[data-section=examples]").click()
        driver.find_elements(By.CSS_SELECTOR, ".example-row")[example].click()
        driver.find_elements(By.CSS_SELECTOR, ".latent-row")[latent].click()
        driver.execute_script("""
            const toks = [...document.querySelectorAll('#tokens .tok')];
            const alpha = (t) => parseFloat((t.style.backgroundColor.match(/[\\d.]+\\)$/) || ['0'])[0]);
            const best = toks.reduce((a, b) => alpha(b) > alpha(a) ? b : a, toks[0]);
            const box = document.getElementById('tokens');
            box.scrollTop = best.offsetTop - box.clientHeight / 2;""")
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradsae_nn.explore", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a results folder an experiment wrote")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the page (headless Chromium)")
    parser.add_argument("--example", type=int, default=0, help="example shown in the screenshot (index)")
    parser.add_argument("--latent", type=int, default=0, help="latent row selected in the screenshot (index)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir
    if not (run_dir / "examples.jsonl").is_file() and not (run_dir / "run_config.json").is_file():
        print(f"error: {run_dir} is not a run folder (no examples.jsonl or run_config.json); pass the folder an "
              f"experiment wrote, e.g. results/perturb/smollm2-135m-it-L15", file=sys.stderr)
        return 2
    report = build_report(run_dir)
    print(report)
    if args.screenshot:
        screenshot(report, args.screenshot, args.example, args.latent)
        print(args.screenshot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
