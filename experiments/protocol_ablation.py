"""Protocol ablation: the perturbation under the project preset, then with one piece of the authors' protocol
added at a time, each compared with the project's run on the examples both hold (paired differences).

    python experiments/protocol_ablation.py --model qwen2.5-coder-0.5b-it --n-correct 30 --k 10 50%
    python experiments/protocol_ablation.py --pieces splice include-bos

Each run is exactly `experiments/perturb.py` with the same options plus the piece's flags (same folder, so
either resumes the other); the collated table goes to results/protocol_ablation/<reference folder>/table.md
with summary.json. Pieces and their flags: gradsae_nn/config/presets.py PIECES, docs/method.md "Protocols".
"""

from gradsae_nn.cli import script

main = script("protocol_ablation", __doc__)

if __name__ == "__main__":
    main.run()
