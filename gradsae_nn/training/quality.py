"""SAE quality on the text the experiments run on, measured so that no single token can decide it.

Tokens counted: every position of every sequence except position 0 (an attention sink) and *massive* tokens,
whose residual norm at the layer exceeds `MASSIVE_FACTOR` (10) × the sample's median norm. Both are counted
apart and never replaced when splicing (the model keeps its own activation there), in every sample alike.
`SAEQuality` holds, over the counted tokens: explained variance `1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²`; the normalised
error `Σ‖x − x̂‖² / Σ‖x‖²`; `max_token_influence`, the largest change of that EV when any one counted token is
left out (a sample on which one token could swing EV shows here); L0; the latents never active; next-token
cross-entropy with the layer clean, replaced by the reconstruction, or zeroed at the counted tokens, the CE
loss recovered `(ce_zero − ce_sae) / (ce_zero − ce_clean)`, and the mean KL(clean ‖ spliced) per predicted
token, in nats. `dead_fraction` counts never-active latents on more tokens, cheaply (forward cut at the layer).

Samples (`quality_sample`): `dev-text`, held-out SQuAD dev paragraphs, whole (BOS where the family uses one),
in file order; `prompts`, the experiments' own prompts for the dev questions of the default sample (seed 0),
built exactly as the experiments build them (template, demonstrations, chat markup), whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from ..core.generation import pad_id
from ..core.targets import ScoringInput, build_batch, model_logits

if TYPE_CHECKING:
    from ..core.sae import SparseAutoencoder
    from ..models import LoadedModel

MASSIVE_FACTOR = 10.0
SAMPLES = ("dev-text", "prompts")
EVAL_TOKENS = 8_000            # tokens of each sample for EV, L0, CE and KL
CHECK_TOKENS = 2_000           # the head of each sample a card also records, for the tests to recompute
DEAD_TOKENS = 20_000           # tokens of each sample for the dead-latent count
DEV_TEXT_MAX = 512             # a dev paragraph's tokens at most
LOGIT_BUDGET = 2 ** 27        # logits (floats) per forward pass: the batch size follows from sequence length × vocab


@dataclass(frozen=True)
class SAEQuality:
    """See the module docstring; `n_tokens` counted, `n_first` + `n_massive` left out (`massive_threshold`)."""

    sample: str
    n_sequences: int
    n_tokens: int
    n_first: int
    n_massive: int
    massive_threshold: float
    explained_variance: float
    normalized_error: float
    max_token_influence: float
    l0: float
    dead_fraction: float
    ce_clean: float
    ce_sae: float
    ce_zero: float
    ce_loss_recovered: float
    kl: float

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _batches(sequences: Sequence[Sequence[int]], vocab: int, max_batch: int = 16) -> Iterator[list[Sequence[int]]]:
    """Consecutive sequences in batches whose logits stay within `LOGIT_BUDGET` floats."""
    batch: list[Sequence[int]] = []
    for seq in sequences:
        width = max([len(s) for s in batch] + [len(seq)])
        if batch and (len(batch) + 1) * width * vocab > LOGIT_BUDGET or len(batch) == max_batch:
            yield batch
            batch = []
        batch.append(seq)
    if batch:
        yield batch


def padded_layout(model: "LoadedModel", batch: Sequence[Sequence[int]]):
    """The left-padded batch (the scoring layout: same position ids as the experiments) and its real tokens."""
    scoring = build_batch([ScoringInput(tuple(s[:-1]), tuple(s[-1:])) for s in batch], pad_id(model))
    real = scoring.attention_mask.bool()
    first = torch.zeros_like(real)
    first[torch.arange(len(batch)), scoring.prompt_start] = True
    return scoring, real, first


def residual_states(model: "LoadedModel", layer: int, sequences: Sequence[Sequence[int]],
                    threshold: float = float("inf")) -> torch.Tensor:
    """`[n, d_model]` residuals at `layer` of the counted tokens, in order: every token but each sequence's first,
    and none whose norm exceeds `threshold` (forward cut at the layer)."""
    states = []
    for batch in _batches(sequences, 1, max_batch=8):
        scoring, real, first = padded_layout(model, batch)
        with torch.no_grad(), model.lm.trace(scoring.model_inputs(model.device)) as tracer:
            x = model.layer(layer).output.save()
            tracer.stop()
        x = x.float().cpu()
        states.append(x[real & ~first & (x.norm(dim=-1) <= threshold)])
    return torch.cat(states)


def massive_threshold(model: "LoadedModel", layer: int, sequences: Sequence[Sequence[int]]) -> float:
    """`MASSIVE_FACTOR` × the median residual norm of the sample (first positions excluded)."""
    return MASSIVE_FACTOR * float(residual_states(model, layer, sequences).norm(dim=-1).median())


@dataclass
class _Stats:
    """What one sequence contributes to an `SAEQuality` (see `_summarize`)."""

    x: torch.Tensor            # [n, d] counted residuals (float64)
    err: torch.Tensor          # [n] ‖x − x̂‖²
    active: torch.Tensor       # [d_sae] latents active on any counted token
    l0: float                  # Σ over counted tokens of the active latents
    ce: dict                   # Σ next-token CE per mode (clean, sae, zero)
    kl: float                  # Σ KL(clean ‖ sae)
    n_pred: int
    n_first: int
    n_massive: int


def _sequence_stats(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, batch: Sequence[Sequence[int]],
                    threshold: float, losses: bool = True) -> list[_Stats]:
    """Per-sequence statistics of one batch: a clean pass, then (`losses`) the counted tokens replaced by the
    reconstruction, then by zeros; without `losses` the clean pass stops at the layer and CE/KL stay 0."""
    module = model.layer(layer)
    scoring, real, first = padded_layout(model, batch)
    inputs = scoring.model_inputs(model.device, all_logits=True)
    with torch.no_grad(), model.lm.trace(inputs) as tracer:
        x = module.output.save()
        if losses:
            clean = model_logits(model.lm).save()
        else:
            tracer.stop()
    massive = real & ~first & (x.float().norm(dim=-1).cpu() > threshold)
    keep = real & ~first & ~massive
    with torch.no_grad():
        h = sae.encode(x[keep.to(x.device)].to(sae.W_enc.dtype))
        recon = sae.decode(h).to(x.dtype)
    if not losses:
        ce = {mode: torch.zeros(len(batch), 1) for mode in ("clean", "sae", "zero")}
        kl = predicted = torch.zeros(len(batch), 1)
        return _per_row(batch, x, keep, h, recon, first, massive, ce, kl, predicted)
    # predictions from a real, non-first position to the next real token: each depends on replaced positions
    labels = inputs["input_ids"][:, 1:]
    predicted = (real[:, 1:] & real[:, :-1] & ~first[:, :-1]).to(clean.device)
    logp = {"clean": clean[:, :-1].float().log_softmax(-1)}
    full_recon = torch.zeros_like(x)
    full_recon[keep.to(x.device)] = recon
    mask = keep.to(x.device)[..., None]
    for mode, replacement in (("sae", full_recon), ("zero", torch.zeros_like(x))):
        with torch.no_grad(), model.lm.trace(inputs):
            module.output = torch.where(mask, replacement, module.output)
            logits = model_logits(model.lm).save()
        logp[mode] = logits[:, :-1].float().log_softmax(-1)
    ce = {mode: -(lp.gather(-1, labels[..., None])[..., 0] * predicted) for mode, lp in logp.items()}   # [b, s−1]
    kl = (logp["clean"].exp() * (logp["clean"] - logp["sae"])).sum(-1) * predicted
    return _per_row(batch, x, keep, h, recon, first, massive, ce, kl, predicted)


def _per_row(batch, x, keep, h, recon, first, massive, ce, kl, predicted) -> list[_Stats]:
    """Split one batch's statistics by row (`_sequence_stats`): `ce` per mode, `kl` and `predicted` are `[b, ·]`."""
    kept, kept_h = x[keep.to(x.device)].double().cpu(), h.cpu()
    err = ((kept - recon.double().cpu()) ** 2).sum(-1)
    out, row_start = [], 0
    for row in range(len(batch)):
        n = int(keep[row].sum())
        rows = slice(row_start, row_start + n)
        row_start += n
        active = kept_h[rows] > 0
        out.append(_Stats(kept[rows], err[rows], active.any(0), float(active.sum()),
                          {mode: float(v[row].sum()) for mode, v in ce.items()}, float(kl[row].sum()),
                          int(predicted[row].sum()), int(first[row].sum()), int(massive[row].sum())))
    return out


def _summarize(stats: Sequence[_Stats], sample: str, threshold: float, losses: bool = True) -> SAEQuality:
    x, e = torch.cat([s.x for s in stats]), torch.cat([s.err for s in stats])
    n = x.shape[0]
    d = ((x - x.mean(0)) ** 2).sum(-1)                    # per-token ‖x − x̄‖²
    sse, sst = float(e.sum()), float(d.sum())
    ev = 1 - sse / sst
    # EV without token i: SSE − e_i over SST − n/(n−1)·d_i (the mean moves when i leaves)
    ev_without = 1 - (sse - e) / (sst - d * n / (n - 1))
    n_pred = sum(s.n_pred for s in stats) if losses else float("nan")
    clean, sae_ce, zero = (sum(s.ce[m] for s in stats) / n_pred for m in ("clean", "sae", "zero"))
    active = torch.stack([s.active for s in stats]).any(0)
    return SAEQuality(sample=sample, n_sequences=len(stats), n_tokens=n, n_first=sum(s.n_first for s in stats),
                      n_massive=sum(s.n_massive for s in stats), massive_threshold=threshold,
                      explained_variance=ev, normalized_error=sse / float((x ** 2).sum()),
                      max_token_influence=float((ev_without - ev).abs().max()), l0=sum(s.l0 for s in stats) / n,
                      dead_fraction=float((~active).float().mean()), ce_clean=clean, ce_sae=sae_ce, ce_zero=zero,
                      ce_loss_recovered=(zero - sae_ce) / (zero - clean), kl=sum(s.kl for s in stats) / n_pred)


def evaluate_prefixes(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, sequences: Sequence[Sequence[int]],
                      prefixes: Sequence[int], sample: str = "custom", threshold: float | None = None,
                      losses: bool = True) -> list[SAEQuality]:
    """`evaluate_sae` of the first k `sequences` for each k in `prefixes`, from one evaluation of them all."""
    if threshold is None:
        threshold = massive_threshold(model, layer, sequences)
    stats: list[_Stats] = []
    for batch in _batches(sequences, int(model.config.vocab_size) if losses else 1):
        stats += _sequence_stats(model, sae, layer, batch, threshold, losses)
    return [_summarize(stats[:k], sample, threshold, losses) for k in prefixes]


def evaluate_sae(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, sequences: Sequence[Sequence[int]],
                 sample: str = "custom", threshold: float | None = None, losses: bool = True) -> SAEQuality:
    """Quality of `sae` at `layer` on `sequences` (token id lists, whole); see the module docstring.
    `losses=False` skips the three full forward passes CE and KL need (a third of the cost, the forward cut at
    the layer): the CE fields and `kl` are then NaN."""
    return evaluate_prefixes(model, sae, layer, sequences, [len(sequences)], sample, threshold, losses)[0]


def dead_fraction(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, sequences: Sequence[Sequence[int]],
                  threshold: float) -> tuple[float, int]:
    """(latents never active on the counted tokens of `sequences`, tokens counted); forward cut at the layer."""
    x = residual_states(model, layer, sequences, threshold)
    ever_active = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    with torch.no_grad():
        for rows in x.split(4096):
            ever_active |= (sae.encode(rows.to(sae.W_enc.dtype)) > 0).any(0).cpu()
    return float((~ever_active).float().mean()), x.shape[0]


def quality_sample(model: "LoadedModel", sample: str, n_tokens: int) -> list[list[int]]:
    """Whole sequences of a quality sample (see the module docstring) until they hold `n_tokens` tokens."""
    from ..data.prompts import get_template, prompt_ids
    from ..data.squad import group_by_context, load_squad, select_examples, to_examples

    examples = to_examples(load_squad())
    if sample == "dev-text":
        tokenizer = model.tokenizer
        bos = [tokenizer.bos_token_id] if model.family.needs_bos and tokenizer.bos_token_id is not None else []
        texts = (bos + tokenizer(c, add_special_tokens=False)["input_ids"] for c in group_by_context(examples))
        sequences = (ids[:DEV_TEXT_MAX] for ids in texts)
    elif sample == "prompts":
        template = get_template(None, model)
        sequences = (prompt_ids(model, template, ex) for ex in select_examples(examples, None, seed=0))
    else:
        raise ValueError(f"unknown quality sample {sample!r}; use one of {', '.join(SAMPLES)}")
    out, total = [], 0
    for ids in sequences:
        if total >= n_tokens:
            break
        out.append(list(ids))
        total += len(ids) - 1
    return out


def measure(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, n_tokens: int = EVAL_TOKENS,
            dead_tokens: int = DEAD_TOKENS) -> dict:
    """The quality of `sae` on both samples, as recorded in its card and the README: per sample the full
    `SAEQuality` on `n_tokens` tokens, the dead fraction over `dead_tokens` (same massive threshold), and
    `check`, the `SAEQuality` of the sample's first sequences holding `CHECK_TOKENS` tokens (what the tests
    recompute)."""
    out = {}
    for sample in SAMPLES:
        sequences = quality_sample(model, sample, dead_tokens)
        states = residual_states(model, layer, sequences)
        threshold = MASSIVE_FACTOR * float(states.norm(dim=-1).median())
        states = states[states.norm(dim=-1) <= threshold]
        head = quality_sample(model, sample, n_tokens)
        check = quality_sample(model, sample, min(CHECK_TOKENS, n_tokens))
        quality, check_quality = evaluate_prefixes(model, sae, layer, head, [len(head), len(check)], sample, threshold)
        with torch.no_grad():
            active = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
            for rows in states.split(4096):
                active |= (sae.encode(rows.to(sae.W_enc.dtype)) > 0).any(0).cpu()
        out[sample] = {**quality.as_dict(), "dead_fraction_more_tokens": round(float((~active).float().mean()), 4),
                       "dead_tokens": states.shape[0], "check": check_quality.as_dict()}
    return out
