"""Quickstart: which SAE latents drive SmolLM2's answer, and what happens without them.

    python examples/quickstart.py              # offline, on the embedded SmolLM2-135M-Instruct (~30 s on a CPU)
    python examples/quickstart.py --remote URL # the same lines against an NDIF server

The lines in `main` are the whole API a notebook needs (docs/api.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import gradsae_nn as gs  # noqa: E402

CONTEXT = ("The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
           "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.")
QUESTION = "In which city is the Eiffel Tower?"


def main(remote: str | None = None) -> str:
    lens = gs.load("smollm2-135m-it", remote=remote)         # the model with its default SAE (layer 15)
    prompt = lens.qa(CONTEXT, QUESTION)                       # the experiments' QA prompt (or lens.chat / a string)
    att = lens.score(prompt)                                  # GradSAE scores for the model's own greedy answer
    att.show(10)                                              # latent, GradSAE score, mean activation, last token
    edited = lens.generate(prompt, zero=att.top_latents(50))  # the answer with GradSAE's top 50 latents zeroed
    baseline = lens.generate(prompt, zero=att.top_latents(50, method="baseline"))  # ... the 50 most active ones
    print(f"answer: {att.answer!r}; GradSAE top 50 zeroed: {edited!r}; baseline top 50 zeroed: {baseline!r}")
    return edited


if __name__ == "__main__":
    main(sys.argv[2] if sys.argv[1:2] == ["--remote"] else None)
