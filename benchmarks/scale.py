"""docs/scale.md's measurements: the true-shape stand-ins of benchmarks/standins.py (layers truncated), through
the product's own paths, one fresh process per (depth, dtype).

    python benchmarks/scale.py /tmp/scale --which gemma2-9b-it --layers 10 11 --dtype bfloat16 float32 \\
        --json /tmp/scale/gemma.json [--keep]

For each depth the stand-in is built under ROOT/<which>-<n> (about 2 GB per billion parameters in bf16;
deleted afterwards unless --keep), then measured on the first SQuAD dev question in the model's default
prompt. Each measurement: wall time (one call after a warm-up on the same input) and peak RSS above the RSS
before the call (a 0.5 ms sampling thread, `benchmarks.memory.PeakRSS`):
- load (model + SAE through SAELens's registry), its time and the RSS after it;
- forward: the plain HF forward, no grad, all logits;
- scoring in-trace (SAE spliced, one forward + backward), the same with --checkpoint, and x-grad (the model's pass: x and ∂T/∂x; then the
  client's part: every latent's scores from them, in chunks of 16,384 latents: `core.chunked`);
- edited generation, 8 new tokens, TopK-50% of GradSAE zeroed at every position: sliced edit and full edit;
- request bytes (zstd) of x-grad scoring and of the sliced edited generation (serialized, not sent); the full
  edit's request is that plus the SAE's weights (computed).
Two depths give the per-layer cost (slope) and the fixed part (embedding, head, SAE); docs/scale.md projects
them to the full depth. Threads: `OMP_NUM_THREADS` as set by the caller (docs/scale.md used 1).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.memory import PeakRSS, rss_bytes  # noqa: E402
from benchmarks.standins import STANDINS, Built, build, hub_env  # noqa: E402

MiB = 2 ** 20


def measured(fn, warmup: bool = True) -> tuple[object, dict[str, float]]:
    """(result, {"s": seconds, "peak_mib": peak RSS above the RSS before the call}) of one call of `fn`."""
    if warmup:
        fn()
    with PeakRSS() as peak:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    return result, {"s": round(seconds, 3), "peak_mib": round((peak.peak - peak.before) / MiB, 1)}


def worker(built: dict, dtype: str) -> dict:
    import torch

    from benchmarks.remote import request_bytes
    from gradsae_nn import api
    from gradsae_nn.core.chunked import chunked_scores
    from gradsae_nn.core.editing import edited_generate, generate_trace, plan_generation
    from gradsae_nn.core.edits import LatentEdit
    from gradsae_nn.core.scoring import grad_trace, layer_grads, score_examples
    from gradsae_nn.core.selection import select
    from gradsae_nn.core.targets import ScoringInput, build_batch
    from gradsae_nn.data.squad import load_squad, to_examples
    from gradsae_nn.models import load_model
    from gradsae_nn.remote import RemoteOptions
    from nnsight.modeling import huggingface

    out: dict = {"built": built, "dtype": dtype, "threads": torch.get_num_threads()}
    before = rss_bytes()
    start = time.perf_counter()
    lens = api.load(built["model"], built["sae"], device="cpu", dtype=dtype)
    out["load"] = {"s": round(time.perf_counter() - start, 1), "rss_mib": round((rss_bytes() - before) / MiB)}
    model, sae, layer = lens.model, lens.sae, lens.layer
    ex = to_examples(load_squad().select(range(1)))[0]
    prompt = lens.qa(ex.context, ex.question)
    answer = tuple(lens.tokenizer(" " + ex.answers[0], add_special_tokens=False)["input_ids"])
    example = ScoringInput(tuple(prompt), answer)
    out["prompt_tokens"], out["answer_tokens"] = len(prompt), len(answer)
    ids = torch.tensor([list(prompt)])

    def forward():
        with torch.no_grad():
            return model.lm._module(ids).logits.shape

    _, out["forward"] = measured(forward)
    (scores,), out["scoring_trace"] = measured(lambda: score_examples(model, sae, layer, [example]))
    _, out["scoring_trace_checkpoint"] = measured(lambda: score_examples(model, sae, layer, [example], checkpoint=True))
    _, out["scoring_xgrad"] = measured(lambda: score_examples(model, sae, layer, [example], scoring="x-grad"))
    batch = build_batch([example], 0)
    (acts, grad, values), out["xgrad_model_part"] = measured(
        lambda: layer_grads(model, layer, [batch], "answer-logprob")[0])
    scored = batch.scored_positions(False)
    _, out["xgrad_client_part"] = measured(lambda: chunked_scores(sae, acts, grad, scored, values))
    sel = select(scores.gradsae, "50%", "top", scores.n_active_last)
    edit = LatentEdit(zero=tuple(sel.latents))
    out["edited_latents"] = len(sel.latents)
    for impl in ("sliced", "full"):
        _, out[f"edit_{impl}"] = measured(lambda impl=impl: edited_generate(
            model, sae, layer, [prompt], [edit], 8, edit_impl=impl, stop="length"))
    huggingface._ID_CACHE[built["model"]] = built["model"]  # offline: the Hub's canonical id is the id itself
    remote = load_model(built["model"], dtype=dtype, remote=RemoteOptions(host="http://127.0.0.1:9"))
    module = remote.layer(layer)
    sae_bytes = sum(getattr(sae, n).numel() * getattr(sae, n).element_size()
                    for n in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"))
    sliced = request_bytes(remote, generate_trace,
                           [(remote.lm, module, plan_generation(remote, sae, [prompt], [edit], 8))], True)
    out["request_bytes"] = {
        "scoring": request_bytes(remote, grad_trace, [(remote.lm, module, batch, "answer-logprob")], True),
        "edit_sliced": sliced, "edit_full_computed": sliced + sae_bytes, "sae_bytes": sae_bytes}
    return out


def run(root: Path, which: str, layers: list[int], dtypes: list[str], keep: bool, sae_id: str | None = None
        ) -> list[dict]:
    results = []
    for n in layers:
        home = root / f"{which}-{n}"
        marker = home / "built.json"
        if not marker.is_file():
            shutil.rmtree(home, ignore_errors=True)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(build(home, which, n, sae_id=sae_id).__dict__))
        built = Built(**json.loads(marker.read_text()))
        for dtype in dtypes:
            proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(built.__dict__), dtype],
                                  env=hub_env(home), capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{which} n={n} {dtype}: {proc.stderr[-2000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
        if not keep:
            shutil.rmtree(home)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        print(json.dumps(worker(json.loads(argv[1]), argv[2])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--which", choices=sorted(STANDINS), required=True)
    parser.add_argument("--layers", type=int, nargs="+", required=True, help="depths to build and measure")
    parser.add_argument("--dtype", nargs="+", default=["bfloat16"], choices=["bfloat16", "float32"])
    parser.add_argument("--json", type=Path, help="append the results here (one JSON per line)")
    parser.add_argument("--keep", action="store_true", help="keep the built stand-ins")
    parser.add_argument("--sae-id", default=None, help="another SAE id of the release (Llama Scope: l0r_8x)")
    args = parser.parse_args(argv)
    results = run(args.root, args.which, args.layers, args.dtype, args.keep, args.sae_id)
    if args.json:
        with args.json.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
