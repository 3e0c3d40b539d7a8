"""Train SAEs on an embedded model's residual stream with SAELens, evaluate them, save them in SAELens format.

    python experiments/train_sae.py --model smollm2-135m-it --layer 6 15 22 --tokens 2000000 \
        --corpus ../shared/data/squad/squad-train-v1.1.paragraphs.jsonl.gz --out saes/

Several layers share one activation pass. Each SAE lands in OUT/<model>/L<layer>/ as cfg.json +
sae_weights.safetensors (loadable with `SAE.load_from_disk` or `--sae OUT/<model>/L<layer>`) plus
gradsae_card.json: the training config, corpus sha256, the exact command, wall time, device, and quality
(explained variance, L0, dead latents, CE loss recovered) on held-out SQuAD dev contexts.
"""

from gradsae_nn.cli import script

main = script("train_sae", __doc__)

if __name__ == "__main__":
    main.run()
