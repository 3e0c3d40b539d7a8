"""Local steering (paper RQ3): zero an example's TopK latents, inject those of another question on the same
context, and check whether the model now answers that other question.

    python experiments/steer.py                                   # defaults: SmolLM2, its default SAE
    python experiments/steer.py --value-source score --positions last   # the authors' final variant

Scores EM/F1 against the *partner* question's answers; "w/o task" is the unsteered answer scored the same
way. Writes examples.jsonl, summary.json, table.md, table.csv, plot.png and manifest.json under --out
(default results/steer/<model>-L<layer>[-<non-default options>]). Rerun the same command to resume.
"""

from gradsae_nn.cli import script

main = script("steer", __doc__)

if __name__ == "__main__":
    main.run()
