"""Row 8: wall time and examples/s of the default perturbation run (`python experiments/perturb.py`).

A default run takes far longer than this suite may, so by default the row reads the newest finished
`results/perturb/<model>-L<layer>/manifest.json` (start and end times, `n_examples`, `seconds_total`,
`seconds_perturb`, git commit, options; see `gradsae_nn/manifest.py` and `experiments/perturb.py`).
`--with-default-run` instead runs it here, from scratch, in a temporary working directory (fresh answer
cache and output folder; the converted model in $GRADSAE_HOME is reused).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.report import REPO, Row, met

GOAL_S = 30 * 60
DEFAULT_N = 50  # experiments/perturb.py DEFAULT_N_CORRECT
WHAT = "`python experiments/perturb.py` default run: wall time, examples/s"


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def row_from_manifest(results_dir: Path, model: str, layer: int) -> Row:
    from gradsae_nn.runs.outputs import run_dir

    path = run_dir("perturb", model, layer, {}, root=results_dir) / "manifest.json"
    if not path.is_file():
        return Row.not_measured("8", WHAT, "—", "≤ 30 min on 2 cores",
                                f"no {path} (run `python experiments/perturb.py`, or pass --with-default-run)")
    m = json.loads(path.read_text())
    commit = (m.get("git") or {}).get("commit") or "unknown"
    dirty = " + uncommitted changes" if (m.get("git") or {}).get("dirty") else ""
    argv = " ".join(m.get("argv") or []) or "(none)"
    if not m.get("ended") or "seconds_total" not in m:
        return Row.not_measured("8", WHAT, "—", "≤ 30 min on 2 cores",
                                f"the run in {path} (started {m.get('started')}, options {argv}) has no end time "
                                "(still running, or interrupted)")
    if not float(m.get("seconds_perturb") or 0.0):
        return Row.not_measured("8", WHAT, "—", "≤ 30 min on 2 cores",
                                f"the run in {path} (last session {m.get('started')} to {m.get('ended')}) perturbed "
                                "nothing in its last session (a rerun of a finished run), so its times say nothing; "
                                "run `python experiments/perturb.py` into an empty results folder")
    seconds = float(m["seconds_total"])
    n = int(m["n_examples"])
    wall = (datetime.fromisoformat(m["ended"]) - datetime.fromisoformat(m["started"])).total_seconds()
    default = not m.get("argv")
    notes = [f"from {path}: started {m['started']}, ended {m['ended']} (wall {minutes(wall)}), commit "
             f"{commit[:12]}{dirty}, options {argv}, platform {m.get('platform')}; seconds_total {seconds:.0f} "
             f"(answer step + perturbation), seconds_perturb {m.get('seconds_perturb')}, {m.get('n_answered')} "
             "questions answered. A resumed run's times cover its last session only. The manifest does not "
             "record the core count."]
    rate = n / seconds
    if default:
        ratio, ok = f"{minutes(seconds)}, {rate:.3f} ex/s", met(seconds <= GOAL_S)
    else:
        estimate = seconds * DEFAULT_N / n
        ratio = f"{minutes(seconds)} for {n} examples ({rate:.3f} ex/s); ≈ {minutes(estimate)} scaled to {DEFAULT_N}"
        ok = "estimate: " + met(estimate <= GOAL_S)
        notes.append("not a default run: the scaled time assumes the answer step grows with the examples too.")
    return Row("8", WHAT, "—", f"{minutes(seconds)}, {n} examples", "—", ratio, "≤ 30 min on 2 cores", ok, notes)


def row_default_run(model: str, device: str) -> Row:
    """Run the default perturbation from scratch (fresh answer cache and outputs in a temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="gradsae-bench-perturb-") as tmp:
        out = Path(tmp) / "perturb"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(REPO / "experiments" / "perturb.py"), "--model", model,
                               "--device", device, "--out", str(out)], cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return Row.not_measured("8", WHAT, "—", "≤ 30 min on 2 cores", f"the default run failed: {tail}")
        m = json.loads((out / "manifest.json").read_text())
    n = int(m["n_examples"])
    return Row("8", WHAT, "—", f"{minutes(wall)}, {n} examples", "—", f"{minutes(wall)}, {n / wall:.3f} ex/s",
               "≤ 30 min on 2 cores", met(wall <= GOAL_S),
               [f"run here by --with-default-run, from scratch (answer step included): seconds_perturb "
                f"{m.get('seconds_perturb')}, {m.get('n_answered')} questions answered."])
