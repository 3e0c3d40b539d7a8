"""Every latent's top-activating training contexts, saved beside the SAE as top_contexts.json.gz (the explorer
shows them next to a latent: `python -m gradsae_nn.explore`).

    python experiments/sae_contexts.py --sae smollm2-135m-it/L15

Scans the first --tokens tokens of the corpus (whole SQuAD train paragraphs by default); each latent keeps its
--per-latent highest activations, one per paragraph, as 8 tokens of context before and 3 after.
"""

from gradsae_nn.cli import script

main = script("sae_contexts", __doc__)

if __name__ == "__main__":
    main.run()
