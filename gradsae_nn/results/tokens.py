"""The run folder's `tokens.jsonl`: what the explorer (`gradsae_nn.explore`) needs per example to shade tokens —
the prompt's tokens as text and the per-token detail of its top latents (`core.tokens.TokenDetail`), float16
arrays as base64. Appended with the example's scores, before its generations, so it resumes with the run: an
example interrupted after this line gets a second line when it is redone, and readers keep the last one.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .records import read_jsonl

TOKENS_FILE = "tokens.jsonl"


def encode_array(array: Any) -> dict:
    """`{"shape", "float16"}`: a 2-D array as little-endian float16 bytes in base64."""
    data = np.asarray(array, dtype="<f2")
    return {"shape": list(data.shape), "float16": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(encoded: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(encoded["float16"]), dtype="<f2").reshape(encoded["shape"])


def token_record(example_id: str, token_texts: Sequence[str], scores: Any) -> dict:
    """One line of `tokens.jsonl` from an example's `LatentScores` with its `tokens` detail: the prompt's tokens,
    the latents with their GradSAE score, mean activation, activation at the last scored token and ranks, and
    the per-token arrays."""
    detail, latents = scores.tokens, list(scores.tokens.latents)
    return {"id": example_id, "tokens": list(token_texts), "offset": detail.offset, "latents": latents,
            "gradsae": [float(scores.gradsae[c]) for c in latents],
            "mean_activation": [float(scores.activation[c]) for c in latents],
            "last_activation": [float(scores.activation_last[c]) for c in latents], "ranks": detail.ranks,
            "contribution": encode_array(detail.contribution.float().numpy()),
            "activation": encode_array(detail.activation.float().numpy())}


def read_tokens(run_dir: Path) -> dict[str, dict]:
    """The last line per example id (a redone example's line replaces the earlier one)."""
    return {r["id"]: r for r in read_jsonl(run_dir / TOKENS_FILE)}
