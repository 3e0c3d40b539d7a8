"""An SAE's quality on both samples, exactly as its card records it (one command per SAE).

    python experiments/sae_quality.py --sae smollm2-135m-it/L15 [--update-card]

Held-out SQuAD dev text and the experiments' own prompts: explained variance and normalised error with
position 0 and massive tokens left out (and the largest change one token could make to that EV), L0, dead
latents (on 20k tokens), CE loss recovered and the KL to the clean model (`gradsae_nn/training/quality.py`).
"""

from gradsae_nn.cli import script

main = script("sae_quality", __doc__)

if __name__ == "__main__":
    main.run()
