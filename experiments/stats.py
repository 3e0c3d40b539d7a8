"""Selection statistics (paper Table 3): active latents, K = 50% size, and overlap of the selected sets
across methods (cross) and across questions sharing a context (inner).

    python experiments/stats.py                     # SmolLM2, its default SAE, 50 correct examples
    python experiments/stats.py --population answered --limit 500

Scoring only, no generation. Writes examples.jsonl, summary.json, table.md and manifest.json under --out
(default results/stats/<model>-L<layer>[-<non-default options>]).
"""

from gradsae_nn.cli import script

main = script("stats", __doc__)

if __name__ == "__main__":
    main.run()
