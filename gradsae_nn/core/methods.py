"""The ranking methods that need more than GradSAE's one forward and backward, added to its scores.

`modes.Method`: `gradsae` and `baseline` (the paper's), `attribution` (free: the same gradients, unclamped and
summed), `integrated-gradients` (`core.integrated`: m more forwards and backwards) and `exact` (`core.exact`:
one forward of the layers above the SAE's per candidate, the candidates being the union of the top
`exact_candidates` of every other method computed: GradSAE, the baseline, attribution, and integrated gradients
when asked for).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import torch

from ..errors import OptionError
from ..modes import Method, check_mode
from .exact import candidate_latents, exact_effects
from .integrated import integrated_gradients
from .sae import SparseAutoencoder
from .targets import ScoringBatch, ScoringInput

if TYPE_CHECKING:
    from ..models import LoadedModel
    from .scores import LatentScores

EXTRA_COST = {"gradsae": "0", "baseline": "0", "attribution": "0 (same gradients)",
              "integrated-gradients": "1 forward + m forwards and backwards",
              "exact": "1 forward of the layers above L per candidate"}


def check_methods(methods: Sequence[str], splice: str) -> None:
    for method in methods:
        check_mode(method, Method, "methods")
    if splice != "lossless" and {"integrated-gradients", "exact"} & set(methods):
        raise OptionError("{methods} integrated-gradients and exact move the residual along the lossless splice; "
                          "use {splice} lossless with them")


def exact_candidate_ids(scores: "LatentScores", n: int) -> list[int]:
    """The latents `exact` measures for these scores: the union of the top `n` of GradSAE, the baseline,
    attribution and (when computed) integrated gradients, in that order (`core.exact.candidate_latents`)."""
    rankings = [scores.gradsae, scores.activation, scores.attribution]
    if scores.integrated_gradients is not None:
        rankings.append(scores.integrated_gradients)
    return candidate_latents(rankings, n)


def extend_scores(model: "LoadedModel", sae: SparseAutoencoder, layer: int, batch: ScoringBatch,
                  examples: Sequence[ScoringInput], scores: list["LatentScores"], methods: Sequence[str],
                  target: str, include_bos: bool, ig_steps: int = 8, exact_candidates: int = 50
                  ) -> list["LatentScores"]:
    """`scores` of one batch with `integrated_gradients` and `exact` filled in where `methods` asks for them."""
    if "integrated-gradients" in methods:
        scored = batch.scored_positions(include_bos)
        ig, zero = integrated_gradients(model, sae, layer, batch, scored, target, ig_steps)
        scores = [dataclasses.replace(s, integrated_gradients=ig[i], target_zero=float(zero[i]))
                  for i, s in enumerate(scores)]
    if "exact" in methods:
        out = []
        for example, s in zip(examples, scores):
            candidates = exact_candidate_ids(s, exact_candidates)
            effects = exact_effects(model, sae, layer, example, candidates, target, include_bos)
            exact = torch.zeros_like(s.gradsae)
            exact[torch.tensor(candidates, dtype=torch.long)] = effects.to(exact.dtype)
            out.append(dataclasses.replace(s, exact=exact))
        scores = out
    return scores
