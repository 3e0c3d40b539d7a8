"""Top-activating training contexts of every latent of an SAE (`experiments/sae_contexts.py`), shipped beside it
as `top_contexts.json.gz` so the explorer can show what a latent fires on offline.

Over the first `n_tokens` tokens of a corpus (whole paragraphs, cut at `max_len`), each latent keeps its
`per_latent` highest activations, at most one per paragraph (its maximum there), position 0 never counted. A
context is the text of the 8 tokens before the token and 3 after, the token itself in [[ ]].
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import torch

from ..results.progress import make_progress
from .quality import padded_layout

if TYPE_CHECKING:
    from ..core.sae import SparseAutoencoder
    from ..models import LoadedModel
    from .config import SAEContextsConfig

BEFORE, AFTER = 8, 3
CONTEXTS_FILE = "top_contexts.json.gz"


def corpus_sequences(model: "LoadedModel", texts: Iterable[str], n_tokens: int, max_len: int = 256) -> list[list[int]]:
    """Token ids of whole texts (BOS first where the family needs one) until `n_tokens` are counted."""
    tokenizer = model.tokenizer
    bos = [tokenizer.bos_token_id] if model.family.needs_bos and tokenizer.bos_token_id is not None else []
    out, total = [], 0
    for text in texts:
        if total >= n_tokens:
            break
        ids = (bos + tokenizer(text, add_special_tokens=False)["input_ids"])[:max_len]
        if len(ids) > 1:
            out.append(ids)
            total += len(ids) - 1
    return out


def top_activations(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, sequences: Sequence[Sequence[int]],
                    per_latent: int = 3, batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(`[d_sae, per_latent]` values, `[d_sae, per_latent, 2]` (sequence, position)), best first; values ≤ 0 mean
    fewer activations than `per_latent`."""
    d_sae = sae.cfg.d_sae
    values = torch.zeros(d_sae, per_latent)
    where = torch.zeros(d_sae, per_latent, 2, dtype=torch.long)
    with make_progress() as progress:
        task = progress.add_task(f"top contexts (L{layer})", total=len(sequences))
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start:start + batch_size]
            scoring, real, first = padded_layout(model, batch)
            with torch.no_grad(), model.lm.trace(scoring.model_inputs(model.device)) as tracer:
                x = model.layer(layer).output.save()
                tracer.stop()
            with torch.no_grad():
                h = sae.encode(x.to(sae.W_dec.dtype)).float().cpu() * (real & ~first)[..., None]   # [b, seq, d_sae]
            best, column = h.max(1)                                                              # [b, d_sae]
            position = column - scoring.prompt_start[:, None]                                    # index in the sequence
            rows = torch.arange(start, start + len(batch))[:, None].expand_as(position)
            merged = torch.cat([values, best.T], 1)                                              # [d_sae, k + b]
            locations = torch.cat([where, torch.stack([rows, position], -1).transpose(0, 1)], 1)
            values, order = merged.topk(per_latent, dim=1)
            where = torch.gather(locations, 1, order[..., None].expand(-1, -1, 2))
            progress.advance(task, len(batch))
    return values, where


def context_text(tokenizer: object, ids: Sequence[int], position: int) -> str:
    before = tokenizer.decode(list(ids[max(1, position - BEFORE):position]))
    after = tokenizer.decode(list(ids[position + 1:position + 1 + AFTER]))
    return f"{before}[[{tokenizer.decode([ids[position]])}]]{after}".replace("\n", "↵")


def top_contexts(model: "LoadedModel", sae: "SparseAutoencoder", layer: int, sequences: Sequence[Sequence[int]],
                 per_latent: int = 3) -> dict[str, list]:
    """`{latent: [[context, activation], ...]}` for every latent that fired, best first."""
    values, where = top_activations(model, sae, layer, sequences, per_latent)
    out: dict[str, list] = {}
    for latent in torch.nonzero(values[:, 0] > 0).flatten().tolist():
        out[str(latent)] = [[context_text(model.tokenizer, sequences[int(s)], int(p)), round(float(v), 3)]
                            for v, (s, p) in zip(values[latent].tolist(), where[latent].tolist()) if v > 0]
    return out


def contexts_main(config: "SAEContextsConfig") -> Path:
    """experiments/sae_contexts.py: `top_contexts.json.gz` beside the SAE (written atomically)."""
    from ..results.records import atomic_write_bytes
    from .run import card_sae, command_line
    from .texts import check_corpus, corpus_texts

    check_corpus(config.corpus)
    folder, _card, model, sae, layer = card_sae(config.sae)
    sequences = corpus_sequences(model, corpus_texts(config.corpus), config.tokens)
    table = top_contexts(model, sae, layer, sequences, config.per_latent)
    payload = {"corpus": Path(config.corpus).name, "tokens": sum(len(s) - 1 for s in sequences),
               "paragraphs": len(sequences), "per_latent": config.per_latent, "command": command_line(),
               "latents_fired": len(table), "latents": table}
    path = folder / CONTEXTS_FILE
    atomic_write_bytes(path, gzip.compress(json.dumps(payload, ensure_ascii=False).encode(), mtime=0))
    print(f"{path}: {len(table)} of {sae.cfg.d_sae} latents fired on {payload['tokens']:,} tokens; "
          f"{path.stat().st_size / 1e3:.0f} kB")
    return path

