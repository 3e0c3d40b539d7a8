"""Faithfulness: how well each ranking method (GradSAE, the activation baseline, attribution, integrated
gradients) finds the latents that exact ablation says drive the answer.

    python experiments/faithfulness.py                        # the default layer, all five methods
    python experiments/faithfulness.py --layers 6 15 22       # each shipped SAE, and a by-layer table

Per correct example: Spearman and precision@5/10/20 of each method's scores against the exact drops over the
candidates (the union of every method's top --exact-candidates), and the share of the total exact effect
each method's top k carries; means with bootstrap CIs, by answer length, and a plot. Writes examples.jsonl,
summary.json, table.md, plot.png and manifest.json under --out (default results/faithfulness/<model>-L<layer>).
Rerun the same command to resume.
"""

from gradsae_nn.cli import script

main = script("faithfulness", __doc__)

if __name__ == "__main__":
    main.run()
