"""Train SAEs on an embedded model's residual stream with SAELens, measure them, save them in SAELens format.

    python experiments/train_sae.py --model smollm2-135m-it --layer 6 15 22 --tokens 2000000 \
        --corpus ../shared/data/squad/squad-train-v1.1.paragraphs.jsonl.gz \
        --questions gradsae_nn/resources/corpus/smollm2-135m-it-questions.jsonl --out saes/

The corpus mixes train paragraphs with whole prompts in the experiments' own template, built from questions
written about train paragraphs (experiments/write_questions.py). Several layers share one activation pass.
Each SAE lands in OUT/<model>/L<layer>/ as cfg.json + sae_weights.safetensors (loadable with
`SAE.load_from_disk` or `--sae OUT/<model>/L<layer>`) plus gradsae_card.json: the training config, corpus
digests, the exact command, timings, and quality on held-out dev text and on the experiments' own prompts
(training/quality.py; recompute it with experiments/sae_quality.py).
"""

from gradsae_nn.cli import script

main = script("train_sae", __doc__)

if __name__ == "__main__":
    main.run()
