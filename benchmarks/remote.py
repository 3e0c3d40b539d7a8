"""Remote execution costs: request sizes and remote vs local time, against an NDIF server.

    python -m gradsae_nn.ndif_local start
    python benchmarks/remote.py --ndif-host http://127.0.0.1:8289 [--repeats 3] [--out remote_bench.json]

1. Request sizes (nnsight's serialized request, as sent: zstd-compressed; raw alongside), for one
   perturbation example's edited generation (its 21 settings in one batch, sliced edit):
   - sliced (what is sent): the union of the example's edited latents, their encoder/decoder rows only;
   - full: the same request carrying the whole SAE as tensors (what an unsliced edit would need);
   - Gemma Scope 131,072 × 3,584: the same two, computed by serializing random tensors of those shapes
     (`--gemma-full` actually serializes the 3.76 GB full one; otherwise it is computed from its size).
   and the scoring request (no SAE at all).
2. Time, remote / local, medians of interleaved repeats: scoring three examples (x-grad), and one
   perturbation example's 21 edited generations.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gradsae_nn.editing import generate_trace, plan_generation, run_generations  # noqa: E402
from gradsae_nn.experiment import select_all  # noqa: E402
from gradsae_nn.models import load_model  # noqa: E402
from gradsae_nn.perturbation import perturbation_jobs  # noqa: E402
from gradsae_nn.pipeline import Item  # noqa: E402
from gradsae_nn.prompts import get_template, prompt_ids  # noqa: E402
from gradsae_nn.remote import RemoteOptions, make_backend  # noqa: E402
from gradsae_nn.sae import SAESlice, load_sae  # noqa: E402
from gradsae_nn.scoring import grad_trace, score_examples  # noqa: E402
from gradsae_nn.squad import load_squad, to_examples  # noqa: E402
from gradsae_nn.targets import ScoringInput, build_batch  # noqa: E402

KS = ("1", "10", "20", "30", "50%")
GEMMA_SCOPE = (131_072, 3_584)


def request_bytes(model, kernel, calls, compress: bool) -> int:
    """Bytes of the request `run_traces` would send for `calls` (serialized, not sent)."""
    sizes: list[int] = []
    backend = make_backend(model.lm, model.remote, blocking=True)
    backend.compress = compress

    def serialize_only(tracer):
        sizes.append(len(backend._serialize(tracer)))

    with model.lm.session(backend=serialize_only):
        results = []
        for args in calls:
            results.append(kernel(*args))
        results.save()
    return sizes[0]


def both(model, kernel, calls) -> dict[str, int]:
    return {"compressed": request_bytes(model, kernel, calls, True), "raw": request_bytes(model, kernel, calls, False)}


def with_full_sae(plan, tensors: dict[str, torch.Tensor]):
    """The plan with `tensors` attached to its applier, so they travel in the request (an unsliced edit's cost)."""
    applier = plan.applier
    applier.full_weights = tensors
    return plan


def fake_slice(u: int, d_in: int) -> SAESlice:
    g = torch.Generator().manual_seed(0)
    return SAESlice(latents=torch.arange(u), W_enc=torch.randn(d_in, u, generator=g), b_enc=torch.randn(u, generator=g),
                    threshold=torch.rand(u, generator=g), W_dec=torch.randn(u, d_in, generator=g),
                    b_dec_in=torch.randn(d_in, generator=g))


def interleaved(fns: dict, repeats: int, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each function, run in alternation (after one warm-up call each)."""
    for fn in fns.values() if warmup else ():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: round(statistics.median(ts), 3) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ndif-host", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gemma-full", action="store_true", help="serialize a real-size 3.76 GB full Gemma Scope SAE")
    parser.add_argument("--out", default=None, help="also write the numbers as JSON here")
    parser.add_argument("--no-timing", action="store_true", help="request sizes only (no generation runs)")
    parser.add_argument("--rows", type=int, default=None, help="time only the first N rows of the example (default: all 21)")
    args = parser.parse_args()

    local = load_model("smollm2-135m-it", device="cpu")
    remote = load_model("smollm2-135m-it", remote=RemoteOptions(host=args.ndif_host))
    sae = load_sae("smollm2-135m-it/L15", local, 15)
    layer = 15
    template = get_template(None, local)
    examples = to_examples(load_squad())[:3]
    inputs = []
    for ex in examples:
        answer = tuple(local.tokenizer(" " + ex.answers[0], add_special_tokens=False)["input_ids"])
        inputs.append(ScoringInput(tuple(prompt_ids(local, template, ex)), answer))
    scores = score_examples(local, sae, layer, inputs[:1], method="x-grad")
    item = Item(examples[0], {"prediction": ""}, inputs[0].prompt_ids, inputs[0].answer_ids)
    jobs, _ = perturbation_jobs(item, scores[0], KS)
    union = sorted({c for sel in select_all(scores[0], KS).values() for c in sel.latents})
    plan = plan_generation(remote, sae, [j.prompt_ids for j in jobs], [j.edit for j in jobs], 16)
    module = remote.layer(layer)
    out: dict = {"example": {"prompt_tokens": len(inputs[0].prompt_ids), "rows": len(jobs), "edited_latents": len(union)}}

    sizes = {"scoring_3_examples": both(remote, grad_trace, [(remote.lm, module, build_batch(inputs, 0), "answer-logprob")]),
             "edit_sliced": both(remote, generate_trace, [(remote.lm, module, plan)])}
    full = {"W_enc": sae.W_enc.detach().clone(), "W_dec": sae.W_dec.detach().clone(), "b_enc": sae.b_enc.detach().clone(),
            "b_dec": sae.b_dec.detach().clone()}
    sliced_plan = plan_generation(remote, sae, [j.prompt_ids for j in jobs], [j.edit for j in jobs], 16)
    sizes["edit_full_sae"] = both(remote, generate_trace, [(remote.lm, module, with_full_sae(sliced_plan, full))])

    d_sae, d_in = GEMMA_SCOPE
    gemma_plan = plan_generation(remote, sae, [j.prompt_ids for j in jobs], [j.edit for j in jobs], 16)
    gemma_plan.applier.slice = fake_slice(len(union), d_in)
    sizes["gemma_scope_edit_sliced"] = both(remote, generate_trace, [(remote.lm, module, gemma_plan)])
    full_bytes = (2 * d_sae * d_in + 2 * d_sae + d_in) * 4  # W_enc, W_dec, b_enc, threshold, b_dec in fp32
    overhead = sizes["edit_sliced"]["raw"]
    sizes["gemma_scope_edit_full"] = {"raw_computed": overhead + full_bytes}
    if args.gemma_full:
        big = {"W_enc": torch.randn(d_in, d_sae), "W_dec": torch.randn(d_sae, d_in)}
        sizes["gemma_scope_edit_full"].update(both(remote, generate_trace, [(remote.lm, module, with_full_sae(
            plan_generation(remote, sae, [j.prompt_ids for j in jobs], [j.edit for j in jobs], 16), big))]))
    out["request_bytes"] = sizes
    if args.no_timing:
        print(json.dumps(out, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        return

    jobs = jobs[:args.rows] if args.rows else jobs
    plan = plan_generation(remote, sae, [j.prompt_ids for j in jobs], [j.edit for j in jobs], 16)
    score_local = lambda: score_examples(local, sae, layer, inputs, method="x-grad")  # noqa: E731
    score_remote = lambda: score_examples(remote, sae, layer, inputs, method="x-grad")  # noqa: E731
    local_plan = plan_generation(local, sae, [j.prompt_ids for j in jobs], [j.edit for j in jobs], 16)
    gen_local = lambda: run_generations(local, layer, [local_plan])  # noqa: E731
    gen_remote = lambda: run_generations(remote, layer, [plan])  # noqa: E731
    assert gen_local() == gen_remote(), "remote generations differ from local ones"
    t_score = interleaved({"local": score_local, "remote": score_remote}, args.repeats)
    t_gen = interleaved({"local": gen_local, "remote": gen_remote}, args.repeats, warmup=False)  # warmed by the check
    out["seconds"] = {"scoring_3_examples": {**t_score, "ratio": round(t_score["remote"] / t_score["local"], 2)},
                      f"perturbation_example_{len(jobs)}_generations": {**t_gen, "ratio": round(t_gen["remote"] / t_gen["local"], 2)}}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
