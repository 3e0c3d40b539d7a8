"""Layer sweep (paper Table 4 analog): the perturbation at one K (default 50%) for every shipped SAE of a model.

    python experiments/layer_sweep.py                       # SmolLM2-135M-Instruct: L6, L15, L22
    python experiments/layer_sweep.py --layers 6 15 --k 10

Each layer's run is exactly `experiments/perturb.py --layer L --k K` (same folder, so either resumes the
other); the collated table goes to results/layer_sweep/<model>[-<options>]/table.md with summary.json.
"""

from gradsae_nn.cli import script

main = script("layer_sweep", __doc__)

if __name__ == "__main__":
    main.run()
