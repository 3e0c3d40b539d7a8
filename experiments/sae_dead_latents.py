"""Dead latents of a shipped or saved SAE on more held-out SQuAD dev tokens than its card's full evaluation.

    python experiments/sae_dead_latents.py --sae gemma3-270m/L9 --tokens 20000 [--update-card]

A latent counts as dead when it never fires on the tokens looked at, so the fraction depends on how many
tokens that is; the full evaluation (with CE loss) is slow for big vocabularies and uses ~4k tokens.
"""

from gradsae_nn.cli import script

main = script("sae_dead_latents", __doc__)

if __name__ == "__main__":
    main.run()
