"""Perturbation (paper RQ1/RQ2): zero each correct example's TopK / BottomK latents, regenerate, score EM/F1.

    python experiments/perturb.py                      # SmolLM2-135M-Instruct, its default SAE, 50 examples
    python experiments/perturb.py --n-correct 200 --model gemma3-270m --k 1 10 50%

Prints the table in the paper's layout (with the paper's numbers as a labelled reference) and writes
examples.jsonl, summary.json, table.md, table.csv, plot.png and manifest.json under --out
(default results/perturb/<model>-L<layer>[-<non-default options>]). Rerun the same command to resume.
"""

from gradsae_nn.cli import script

main = script("perturb", __doc__)

if __name__ == "__main__":
    main.run()
