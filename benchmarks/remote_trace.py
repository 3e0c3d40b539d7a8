"""Row 7: a remote (NDIF) trace with an SAE edit: latency and request bytes, sliced edit vs full SAE.

Kept in one place (one function, `rows_remote`) so the remote client of the `ndif-local` branch can replace
the plain-nnsight calls here. (Named apart from that branch's standalone `benchmarks/remote.py`.)

The trace: one forward of the example's prompt with its GradSAE top 20 zeroed at every position of the
layer, saving the last position's logits. The edit is written inline in the trace (tensors and torch ops
only, so nothing but the block and its tensors has to travel):
- sliced: the 20 latents' encoder columns and decoder rows travel (`sae.slice_sae`);
- full: every latent's rows travel and all latents are encoded on the server, then the 20 are removed
  (equal to `decode(edit(encode(x))) + (x − decode(encode(x)))` for a ReLU/JumpReLU SAE).

Request bytes are what nnsight's remote backend would POST: `RequestModel.serialize(tracer, compress)`
of the trace (zstd-compressed by default, `CONFIG.API.COMPRESS`), measured by a backend that serializes
and then runs the trace locally: no server needed. Latency needs a server: `--remote-host URL` (a local
NDIF, see docs/remote.md on the `ndif-local` branch); the remote trace is `model.trace(..., remote=URL)`,
timed interleaved with the same trace run locally.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.context import Context
from benchmarks.report import Row
from benchmarks.timing import fmt, interleaved
from gradsae_nn.errors import UsageError
from gradsae_nn.sae import slice_sae

NO_HOST = "pass --remote-host (see docs/remote.md)"


class PayloadProbe:
    """An nnsight backend that records the request payload a remote run would send, then runs locally."""

    def __init__(self) -> None:
        self.raw = self.compressed = 0

    def __call__(self, tracer: Any) -> None:
        from nnsight.ndif import pull_env
        from nnsight.schema.request import RequestModel

        pull_env()  # what the remote backend does first: local modules ship by value
        self.raw = len(RequestModel.serialize(tracer, compress=False))
        self.compressed = len(RequestModel.serialize(tracer, compress=True))
        tracer.execute(tracer.info.code)


def edit_tensors(ctx: Context, latents: tuple[int, ...], full: bool) -> dict[str, torch.Tensor]:
    """Encoder/decoder rows to ship: the edited latents only (sliced), or every latent plus a zero mask (full)."""
    rows = list(range(ctx.sae.cfg.d_sae)) if full else list(latents)
    part = slice_sae(ctx.sae, rows)
    mask = torch.zeros(len(rows), dtype=part.W_dec.dtype, device=part.W_dec.device)
    mask[torch.tensor(latents, dtype=torch.long) if full else torch.arange(len(rows))] = 1.0
    return {"w_enc": part.W_enc, "b_enc": part.b_enc, "threshold": part.threshold, "w_dec": part.W_dec,
            "b_dec_in": part.b_dec_in, "mask": mask}


def edited_trace(ctx: Context, ids: torch.Tensor, t: dict[str, torch.Tensor], remote: Any = False,
                 backend: Any = None) -> torch.Tensor:
    """Last-position logits with the edit `t` applied at the layer (remote=URL runs it on that NDIF server)."""
    # only envoys and tensors are referenced inside the block: everything it names is serialized
    lm, layer, lm_head = ctx.model.lm, ctx.model.layer(ctx.layer), ctx.model.lm.lm_head
    w_enc, b_enc, threshold, w_dec, b_dec_in, mask = (t["w_enc"], t["b_enc"], t["threshold"], t["w_dec"],
                                                      t["b_dec_in"], t["mask"])
    with torch.no_grad(), lm.trace(ids, remote=remote, backend=backend):
        x = layer.output
        pre = (x - b_dec_in) @ w_enc + b_enc
        f = torch.relu(pre) * (pre > threshold).to(pre.dtype)
        layer.output = x - (f * mask) @ w_dec
        logits = lm_head.output[:, -1].save()
    return logits


def allow_local_model_key(ctx: Context) -> None:
    """nnsight 0.8.1 canonicalises a model's repo id on the Hub before a remote request; for a local model
    directory (the embedded models) that lookup fails offline, so register the path as its own canonical id
    (the key a local NDIF deploys the embedded model under)."""
    from nnsight.modeling import huggingface

    huggingface._ID_CACHE.setdefault(ctx.model.source, ctx.model.source)


def rows_remote(ctx: Context, host: str | None) -> list[Row]:
    latents = ctx.edits[0].zero
    ids = torch.tensor([ctx.inputs[0].prompt_ids], device=ctx.device)
    try:
        tensors = {name: edit_tensors(ctx, latents, full=name == "full") for name in ("sliced", "full")}
    except UsageError as exc:
        reason = f"the sliced edit needs a ReLU/JumpReLU SAE ({exc})"
        return [Row.not_measured(n, w, v, "report", reason) for n, w, v in ROWS]

    probes = {name: PayloadProbe() for name in tensors}
    outputs = {name: edited_trace(ctx, ids, tensors[name], backend=probes[name]) for name in tensors}
    same = torch.allclose(outputs["sliced"], outputs["full"], atol=1e-4, rtol=1e-4)
    s, f = probes["sliced"], probes["full"]
    size = Row("7c", f"request bytes of the edited trace, sliced edit ({len(latents)} latents' rows)",
               f"full SAE edit ({ctx.sae.cfg.d_sae} latents)", f"{s.compressed:,} B", f"{f.compressed:,} B",
               f"{s.compressed / f.compressed:.4f}× ({f.compressed / s.compressed:.0f}× smaller)", "report", "report",
               [f"nnsight `RequestModel.serialize` as the remote backend sends it (zstd level 6); uncompressed "
                f"{s.raw:,} B vs {f.raw:,} B. Sliced and full logits agree: {same}. Measured without a server."])
    if not host:
        return [Row.not_measured("7a", ROWS[0][1], ROWS[0][2], "report", NO_HOST),
                Row.not_measured("7b", ROWS[1][1], ROWS[1][2], "report", NO_HOST), size]

    from nnsight import CONFIG

    allow_local_model_key(ctx)
    logging = CONFIG.APP.REMOTE_LOGGING
    CONFIG.APP.REMOTE_LOGGING = False
    try:
        t = interleaved({"local": lambda: edited_trace(ctx, ids, tensors["sliced"]),
                         "remote_sliced": lambda: edited_trace(ctx, ids, tensors["sliced"], remote=host),
                         "remote_full": lambda: edited_trace(ctx, ids, tensors["full"], remote=host)},
                        ctx.repeats, sync=ctx.sync)
    finally:
        CONFIG.APP.REMOTE_LOGGING = logging
    local, rs, rf = t["local"], t["remote_sliced"], t["remote_full"]
    return [Row("7a", ROWS[0][1], ROWS[0][2], rs.describe(), local.describe(),
                f"{rs.median / local.median:.2f}× (+{fmt(rs.median - local.median)} s)", "report", "report",
                [f"server {host}; one forward of {ids.shape[1]} tokens, last-position logits returned."]),
            Row("7b", ROWS[1][1], ROWS[1][2], rf.describe(), rs.describe(), f"{rf.median / rs.median:.2f}×",
                "report", "report"),
            size]


ROWS = (("7a", "remote (NDIF) edited trace latency, sliced edit", "the same trace run locally"),
        ("7b", "remote edited trace latency, full SAE edit", "remote, sliced edit"))
