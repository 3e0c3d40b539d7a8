"""Steering dose-response: local steering at several value scales, for GradSAE and the baseline, with two
controls (inject without zeroing; inject K random latents active in the partner).

    python experiments/steer_sweep.py                       # K = 10 and 50%, scales 0.5 1 2 4 8 16
    python experiments/steer_sweep.py --value-scales 1 4 16 --variants swap

Reports partner EM/F1 (did the model answer the other question?), own-answer EM/F1 (how much of its answer
survived) and the fraction of broken outputs (empty or not a span of the context) per cell, and compares
GradSAE with the baseline per pair, each at its best scale chosen on one half of the pairs and reported on the
other. Writes examples.jsonl, summary.json, table.md, dose.png, frontier.png and manifest.json under --out
(default results/steer_sweep/<model>-L<layer>[-<non-default options>]). Rerun the same command to resume.
"""

from gradsae_nn.cli import script

main = script("steer_sweep", __doc__)

if __name__ == "__main__":
    main.run()
