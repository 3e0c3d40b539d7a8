"""Row 6: peak memory of GradSAE scoring (forward + backward, SAE spliced) vs a forward only, same input.

The forward is the model's plain forward, no grad, returning every column's logits (what a forward
costs as people run it). Measured once each for context: the forward with only the logit columns scoring
keeps (`logits_to_keep`: how much of a forward is the `[seq, vocab]` logits), and a plain-PyTorch forward +
backward to the layer (`core.plain_forward_backward`): the cost of any backward, without nnsight or the SAE.

Each measurement runs in a fresh subprocess (`python -m benchmarks.memory SPEC.json scoring|forward`), so
neither sees the other's cached allocations: it loads the model and SAE, warms the code path up on an
8-token input, then measures one call on the real example:
- CUDA: `torch.cuda.max_memory_allocated()` minus the allocated memory before the call;
- CPU: the peak resident set size (sampled every 0.5 ms from /proc/self/statm by a thread) minus the
  RSS before the call. (tracemalloc does not see torch's allocations.)
Subprocesses alternate forward, scoring, forward, ... and the median of each is reported.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.report import REPO, Row, met  # noqa: E402

MiB = 2 ** 20


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak RSS while the `with` block runs, from a sampling thread (torch releases the GIL in its ops)."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.before = rss_bytes()
        self.peak = self.before
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def worker(spec_path: str, what: str) -> dict:
    """Inside the subprocess: one measured call of `what` ("scoring" or "forward"); returns bytes."""
    from gradsae_nn.models import load_model
    from gradsae_nn.core.sae import load_sae
    from gradsae_nn.core.scoring import score_examples
    from gradsae_nn.core.targets import ScoringInput, build_batch

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    model = load_model(spec["model"], device=spec["device"])
    if spec["sae"] == "random":
        from benchmarks.context import random_sae

        sae = random_sae(model.d_model, 8 * model.d_model, spec["layer"]).to(model.device)
    else:
        sae = load_sae(spec["sae"], model, spec["layer"])
    example = ScoringInput(tuple(spec["prompt_ids"]), tuple(spec["answer_ids"]))
    warm = ScoringInput(example.prompt_ids[:8], example.answer_ids)

    def run(ex: ScoringInput) -> None:
        if what in ("scoring", "scoring-checkpoint"):
            score_examples(model, sae, spec["layer"], [ex], checkpoint=what == "scoring-checkpoint")
        elif what == "plain-fwd-bwd":
            from types import SimpleNamespace

            from benchmarks.core import plain_forward_backward

            plain_forward_backward(SimpleNamespace(hf=model.lm._module, layer=spec["layer"], device=model.device), ex)
        else:  # "forward": every column's logits, as a plain forward returns them; "forward-answer": scoring's columns
            batch = build_batch([ex], pad_id=0)
            inputs = batch.model_inputs(model.device, all_logits=what == "forward")
            with torch.no_grad():
                model.lm._module(**inputs)

    run(warm)
    gc.collect()
    if model.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run(example)
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - before, "how": "torch.cuda.max_memory_allocated"}
    with PeakRSS() as peak:
        run(example)
    return {"peak_bytes": peak.peak - peak.before, "how": "peak RSS − RSS before (sampled 0.5 ms)"}


def measure(spec: dict, what: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", f.name, what], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=1800)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker ({what}) failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def row_memory(ctx, model_name: str, repeats: int) -> list[Row]:
    example = ctx.inputs[0]
    spec = {"model": model_name, "device": str(ctx.device), "sae": ctx.sae_spec, "layer": ctx.layer,
            "threads": torch.get_num_threads(), "prompt_ids": list(example.prompt_ids),
            "answer_ids": list(example.answer_ids)}
    peaks: dict[str, list[float]] = {"scoring": [], "forward": [], "scoring-checkpoint": [], "forward-answer": [],
                                     "plain-fwd-bwd": []}
    how = ""
    for i in range(repeats):
        for what in ("forward", "scoring", "scoring-checkpoint") if i else tuple(peaks):
            result = measure(spec, what)
            peaks[what].append(result["peak_bytes"] / MiB)
            how = result["how"]
    med = {what: statistics.median(v) for what, v in peaks.items()}
    ratio = med["scoring"] / med["forward"] if med["forward"] > 0 else float("inf")
    runs = lambda what: ", ".join(f"{x:.0f}" for x in peaks[what])  # noqa: E731
    return [Row("6", "peak memory of GradSAE scoring, 1 example (fwd + bwd, SAE spliced)",
               "forward only (no grad, every column's logits), same input", f"{med['scoring']:.0f} MiB",
               f"{med['forward']:.0f} MiB", f"{ratio:.2f}×", "report; ≤ 2×", met(ratio <= 2.0),
               [f"{how}; median of {repeats} fresh subprocesses each (scoring: {runs('scoring')} MiB; forward: "
                f"{runs('forward')} MiB); {len(example.prompt_ids)} + {len(example.answer_ids)} tokens. Once each: "
                f"forward with answer-predicting logits only {med['forward-answer']:.0f} MiB; plain PyTorch fwd + bwd "
                f"to layer {ctx.layer} (no nnsight, no SAE) {med['plain-fwd-bwd']:.0f} MiB, so scoring / plain fwd + bwd = "
                f"{med['scoring'] / med['plain-fwd-bwd']:.2f}×."]),
            row_checkpoint(ctx, med, runs("scoring-checkpoint"), how, repeats)]


def row_checkpoint(ctx, med: dict[str, float], runs: str, how: str, repeats: int) -> Row:
    """Row 6b: `--checkpoint` (core/checkpoint.py): peak memory against the same forward, and its time cost."""
    from benchmarks.timing import interleaved, paired_ratio
    from gradsae_nn.core.scoring import score_examples

    ex = ctx.inputs[0]
    t = interleaved({flag: (lambda flag=flag: score_examples(ctx.model, ctx.sae, ctx.layer, [ex], checkpoint=flag))
                     for flag in (True, False)}, ctx.repeats, sync=ctx.sync)
    ratio = med["scoring-checkpoint"] / med["forward"] if med["forward"] > 0 else float("inf")
    time_ratio = paired_ratio(t[True], t[False])
    return Row("6b", "peak memory of GradSAE scoring with --checkpoint (layers above the SAE's recomputed)",
               "forward only, as row 6", f"{med['scoring-checkpoint']:.0f} MiB", f"{med['forward']:.0f} MiB",
               f"{ratio:.2f}×", "≤ 2×", met(ratio <= 2.0),
               [f"{how}; median of {repeats} subprocesses ({runs} MiB); without --checkpoint {med['scoring']:.0f} MiB "
                f"(row 6). Time with / without --checkpoint, interleaved: {time_ratio.describe('×')} "
                f"(median {t[True].median:.3g} s vs {t[False].median:.3g} s); scores equal (tests/test_core.py)."])


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2])))
