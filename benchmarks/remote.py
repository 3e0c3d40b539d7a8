"""Row 7: remote (NDIF) execution costs — request sizes and remote vs local time — through the product's own
remote client (`gradsae_nn.remote`: the same kernels the experiment scripts send).

In the suite (`benchmarks/run.py --remote-host URL`) or standalone:

    python -m gradsae_nn.ndif_local start
    python benchmarks/remote.py --remote-host http://127.0.0.1:8289 [--repeats 5] [--gen-rows 4] [--json sizes.json]

1. Request bytes (nnsight's serialized request as the remote backend POSTs it: zstd-compressed, raw alongside;
   serialized only, so no server is needed) for one perturbation example's edited generation — its 21
   settings (unedited + 5 K × TopK/BottomK × GradSAE/baseline) in one request:
   - sliced (what is sent): the encoder/decoder rows of the union of the edited latents only;
   - full: the same request also carrying the whole SAE's tensors (what an unsliced edit would need);
   - Gemma Scope 131,072 × 3,584: sliced serialized with random tensors of that width; full computed from its
     size (`--gemma-full` serializes the real-size 3.76 GB tensors instead);
   and the scoring request, which carries no SAE at all (x and ∂target/∂x come back; scores are client-side).
2. Time, remote / local, interleaved medians: scoring 3 examples (x-grad), and the example's first `--rows`
   edited generations; remote results are checked equal to local ones first.
TopK SAEs cannot be sliced (a latent's activation depends on every other latent's): their rows say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.report import Row  # noqa: E402
from benchmarks.timing import Timing, fmt, interleaved  # noqa: E402
from gradsae_nn.core.editing import EditedGeneration, generate_trace, plan_generation, run_generations  # noqa: E402
from gradsae_nn.errors import UsageError  # noqa: E402
from gradsae_nn.runs.jobs import select_all  # noqa: E402
from gradsae_nn.models import LoadedModel, load_model  # noqa: E402
from gradsae_nn.remote import RemoteOptions, make_backend  # noqa: E402
from gradsae_nn.core.sae import SAESlice  # noqa: E402
from gradsae_nn.core.scoring import LatentScores, grad_trace, score_examples  # noqa: E402
from gradsae_nn.core.edits import LatentEdit  # noqa: E402
from gradsae_nn.core.targets import ScoringInput, build_batch  # noqa: E402

KS = ("1", "10", "20", "30", "50%")
GEMMA_SCOPE = (131_072, 3_584)  # Gemma Scope 2 9B layer SAE: latents × d_model
NO_HOST = "pass --remote-host URL (a local NDIF: python -m gradsae_nn.ndif_local start; docs/remote.md)"
ROWS = (("7a", "remote scoring, 3 examples (x-grad: no SAE in the request)", "the same scoring run locally"),
        ("7b", "remote edited generation, one request (sliced edit)", "the same generations run locally"),
        ("7c", "request bytes, edited generation of one example, sliced edit", "the same request with the full SAE"),
        ("7d", "request bytes, the same for a 131,072 × 3,584 Gemma Scope SAE, sliced", "full SAE (computed)"))


def perturbation_edits(scores: LatentScores) -> list[LatentEdit]:
    """One perturbation example's edits: unedited, then every K × TopK/BottomK × method zeroing (21 for 5 Ks)."""
    return [LatentEdit()] + [LatentEdit(zero=sel.latents) for sel in select_all(scores, KS).values()]


def request_bytes(model: LoadedModel, kernel: Any, calls: Sequence[tuple], compress: bool) -> int:
    """Bytes of the request `remote.run_traces` would send for `calls` (serialized, not sent)."""
    sizes: list[int] = []
    backend = make_backend(model.lm, model.remote, blocking=True)
    backend.compress = compress

    def serialize_only(tracer: Any) -> None:
        sizes.append(len(backend._serialize(tracer)))

    with model.lm.session(backend=serialize_only):
        results = []
        for args in calls:
            results.append(kernel(*args))
        results.save()
    return sizes[0]


def both(model: LoadedModel, kernel: Any, calls: Sequence[tuple]) -> dict[str, int]:
    return {"compressed": request_bytes(model, kernel, calls, True), "raw": request_bytes(model, kernel, calls, False)}


def with_tensors(plan: EditedGeneration, tensors: dict[str, torch.Tensor]) -> EditedGeneration:
    """`plan` with `tensors` attached to its edit applier, so they travel in the request (an unsliced edit's cost)."""
    plan.applier.full_weights = tensors
    return plan


def random_slice(u: int, d_in: int) -> SAESlice:
    """A slice of `u` latents of a `d_in`-wide SAE with random values (request size depends on shapes only)."""
    g = torch.Generator().manual_seed(0)
    return SAESlice(latents=torch.arange(u), W_enc=torch.randn(d_in, u, generator=g), b_enc=torch.randn(u, generator=g),
                    threshold=torch.rand(u, generator=g), W_dec=torch.randn(u, d_in, generator=g),
                    b_dec_in=torch.randn(d_in, generator=g))


def measure_sizes(remote: LoadedModel, sae: Any, layer: int, inputs: Sequence[ScoringInput], edits: Sequence[LatentEdit],
                  gen_tokens: int, gemma_full: bool = False) -> dict[str, dict[str, int]]:
    """Request bytes (`compressed`, `raw`) of scoring `inputs` and of `inputs[0]`'s edited generations."""
    module = remote.layer(layer)
    prompts = [inputs[0].prompt_ids] * len(edits)

    def plan() -> EditedGeneration:
        return plan_generation(remote, sae, prompts, edits, gen_tokens)

    full = {name: getattr(sae, name).detach().clone() for name in ("W_enc", "W_dec", "b_enc", "b_dec")}
    sizes = {"scoring": both(remote, grad_trace, [(remote.lm, module, build_batch(list(inputs), 0), "answer-logprob")]),
             "edit_sliced": both(remote, generate_trace, [(remote.lm, module, plan())]),
             "edit_full_sae": both(remote, generate_trace, [(remote.lm, module, with_tensors(plan(), full))])}
    d_sae, d_in = GEMMA_SCOPE
    gemma = plan()
    n_edited = int(gemma.applier.slice.latents.numel())
    gemma.applier.slice = random_slice(n_edited, d_in)
    sizes["gemma_scope_edit_sliced"] = both(remote, generate_trace, [(remote.lm, module, gemma)])
    full_bytes = (2 * d_sae * d_in + 2 * d_sae + d_in) * 4  # W_enc, W_dec, b_enc, threshold, b_dec in fp32
    sizes["gemma_scope_edit_full"] = {"raw": sizes["edit_sliced"]["raw"] + full_bytes, "computed": 1}
    if gemma_full:
        big = {"W_enc": torch.randn(d_in, d_sae), "W_dec": torch.randn(d_sae, d_in)}
        sizes["gemma_scope_edit_full"] = both(remote, generate_trace, [(remote.lm, module, with_tensors(plan(), big))])
    sizes["edited_latents"] = {"count": n_edited, "rows": len(edits)}
    return sizes


def measure_times(local: LoadedModel, remote: LoadedModel, sae: Any, layer: int, inputs: Sequence[ScoringInput],
                  edits: Sequence[LatentEdit], gen_tokens: int, repeats: int, sync: Any = None
                  ) -> tuple[dict[str, Timing], dict[str, Timing], float]:
    """Interleaved timings `{local, remote}` of scoring `inputs` and of `inputs[0]`'s `edits` generations, after
    checking remote = local (same generated tokens; returns the largest relative score difference)."""
    prompts = [inputs[0].prompt_ids] * len(edits)
    plans = {name: plan_generation(m, sae, prompts, edits, gen_tokens) for name, m in (("local", local), ("remote", remote))}
    a = score_examples(local, sae, layer, inputs, scoring="x-grad")
    b = score_examples(remote, sae, layer, inputs, scoring="x-grad")
    diff = max(float((x.gradsae - y.gradsae).abs().max() / x.gradsae.abs().max().clamp_min(1e-30)) for x, y in zip(a, b))
    if run_generations(local, layer, [plans["local"]]) != run_generations(remote, layer, [plans["remote"]]):
        raise AssertionError("remote edited generations differ from local ones")
    scoring = interleaved({name: (lambda m=m: score_examples(m, sae, layer, inputs, scoring="x-grad"))
                           for name, m in (("local", local), ("remote", remote))}, repeats, sync=sync)
    generation = interleaved({name: (lambda m=m, p=plans[name]: run_generations(m, layer, [p]))
                              for name, m in (("local", local), ("remote", remote))}, repeats, warmup=0, sync=sync)
    return scoring, generation, diff


def remote_twin(model: LoadedModel, host: str | None) -> LoadedModel:
    """The same model as a remote one (meta weights here; nothing is contacted until a request is sent)."""
    return load_model(model.name, remote=RemoteOptions(host=host or "http://127.0.0.1:1", retries=0))


def rows_remote(ctx: Any, host: str | None, rows: int = 4) -> list[Row]:
    """Row 7 from the suite's context: sizes always; times when `host` serves `ctx.model`."""
    inputs = ctx.inputs[:3]
    edits = perturbation_edits(ctx.scores[0])
    remote = remote_twin(ctx.model, host)
    try:
        sizes = measure_sizes(remote, ctx.sae, ctx.layer, inputs, edits, 16)
    except UsageError as exc:
        return [Row.not_measured(n, w, v, "report", f"no sliced edit for this SAE ({exc})") for n, w, v in ROWS]
    s, f = sizes["edit_sliced"], sizes["edit_full_sae"]
    gs, gf = sizes["gemma_scope_edit_sliced"], sizes["gemma_scope_edit_full"]
    n = sizes["edited_latents"]
    size_rows = [
        Row("7c", ROWS[2][1], ROWS[2][2], f"{s['compressed']:,} B", f"{f['compressed']:,} B",
            f"{s['compressed'] / f['compressed']:.4f}× ({f['compressed'] / s['compressed']:.0f}× smaller)", "report",
            "report", [f"{n['rows']} settings of example 0 in one request, {n['count']} distinct edited latents of "
                       f"{ctx.sae.cfg.d_sae}; uncompressed {s['raw']:,} B vs {f['raw']:,} B; the scoring request "
                       f"({len(inputs)} examples) is {sizes['scoring']['compressed']:,} B (no SAE). Serialized "
                       "exactly as nnsight's remote backend sends it (zstd); no server needed."]),
        Row("7d", ROWS[3][1], ROWS[3][2], f"{gs['compressed']:,} B", f"{gf['raw'] / 2 ** 30:.2f} GiB",
            f"{gf['raw'] / gs['compressed']:,.0f}× smaller", "report", "report",
            [f"the same {n['count']} latents' rows at d_model 3,584 (random values, serialized; raw {gs['raw']:,} B); "
             "full = the sliced request + fp32 W_enc, W_dec, b_enc, threshold, b_dec (computed)."])]
    if not host:
        return [Row.not_measured(n_, w, v, "report", NO_HOST) for n_, w, v in ROWS[:2]] + size_rows
    scoring, generation, diff = measure_times(ctx.model, remote, ctx.sae, ctx.layer, inputs, edits[:rows], 16,
                                              ctx.repeats, sync=ctx.sync)
    sl, sr, gl, gr = scoring["local"], scoring["remote"], generation["local"], generation["remote"]
    return [Row("7a", ROWS[0][1], ROWS[0][2], sr.describe(), sl.describe(),
                f"{sr.median / sl.median:.2f}× (+{fmt(sr.median - sl.median)} s)", "report", "report",
                [f"server {host}; remote scores equal local ones to {diff:.1e} (relative, max over latents)."]),
            Row("7b", ROWS[1][1], ROWS[1][2], gr.describe(), gl.describe(),
                f"{gr.median / gl.median:.2f}× (+{fmt(gr.median - gl.median)} s)", "report", "report",
                [f"the first {min(rows, len(edits))} of example 0's {len(edits)} settings, 16 new tokens, one request "
                 "(polled, as the scripts do); same tokens as local."])] + size_rows


def main() -> None:
    from benchmarks.options import build_parser, setup

    parser = build_parser(__doc__)  # the suite's options; --remote-host is the server (without it: sizes only)
    parser.add_argument("--gen-rows", type=int, default=4, help="edited generations timed (default 4 of 21)")
    parser.add_argument("--gemma-full", action="store_true", help="serialize a real-size 3.76 GB full Gemma Scope SAE")
    parser.add_argument("--json", default=None, help="write the request sizes as JSON here")
    args = parser.parse_args()
    ctx = setup(args, n_examples=3)
    if args.json or args.gemma_full:
        sizes = measure_sizes(remote_twin(ctx.model, args.remote_host), ctx.sae, ctx.layer, ctx.inputs[:3],
                              perturbation_edits(ctx.scores[0]), 16, args.gemma_full)
        print(json.dumps(sizes, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(sizes, indent=1) + "\n")
    for row in rows_remote(ctx, args.remote_host, args.gen_rows):
        print(f"{row.number}  {row.what}: {row.a} vs {row.b} → {row.ratio}  {' '.join(row.notes)}")


if __name__ == "__main__":
    main()
