"""Train SAEs on an embedded model's residual stream with SAELens, evaluate them, save them in SAELens format.

    python experiments/train_sae.py --model smollm2-135m-it --layer 6 15 22 --tokens 2000000 \
        --corpus ../shared/data/squad/squad-train-v1.1.paragraphs.jsonl.gz --out saes/

Several layers share one activation pass. Each SAE lands in OUT/<model>/L<layer>/ as cfg.json +
sae_weights.safetensors (loadable with `SAE.load_from_disk` or `--sae OUT/<model>/L<layer>`) plus
gradsae_card.json: the training config, corpus sha256, the exact command, wall time, device, and quality
(explained variance, L0, dead latents, CE loss recovered) on held-out SQuAD dev contexts.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gradsae_nn.cli import ArgumentParser, positive_int, run  # noqa: E402
from gradsae_nn.models import DEFAULT_MODEL, load_model  # noqa: E402
from gradsae_nn.records import atomic_write_json  # noqa: E402
from gradsae_nn.sae_eval import evaluate_sae  # noqa: E402
from gradsae_nn.sae_training import (ARCHITECTURES, TrainConfig, check_corpus, collect_activations,  # noqa: E402
                                     config_record, corpus_texts, file_sha256, train_sae)
from gradsae_nn.squad import group_by_context, load_squad, to_examples  # noqa: E402


def parse_args(argv: list[str] | None = None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model to train on (default: %(default)s)")
    parser.add_argument("--layer", type=int, nargs="+", required=True, help="one or more layers (one pass)")
    parser.add_argument("--width", type=positive_int, default=None, help="latents (default: 8 x d_model)")
    parser.add_argument("--tokens", type=positive_int, default=2_000_000, help="training tokens (default: %(default)s)")
    parser.add_argument("--corpus", required=True,
                        help="training text: .jsonl(.gz) with 'context'/'text', .txt, or a HF dataset name (online). "
                             "Never the SQuAD dev set: that is what the experiments evaluate on")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--architecture", default="standard", choices=ARCHITECTURES)
    parser.add_argument("--l1", type=float, default=5.0, help="L1 coefficient (standard) (default: %(default)s)")
    parser.add_argument("--sparsity", type=float, default=5.0, help="L0 coefficient (jumprelu) (default: %(default)s)")
    parser.add_argument("--target-l0", type=float, default=None,
                        help="jumprelu: penalise (L0 - target)^2 (Gemma Scope 2's quadratic loss) instead of L0; "
                             "under Adam the thresholds move ~lr per step, so also give enough steps")
    parser.add_argument("--pre-act-loss", type=float, default=None,
                        help="jumprelu: coefficient of the pre-activation loss that revives latents silent for a "
                             "tenth of training (default: off)")
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--batch-size", type=positive_int, default=4096, help="SAE training batch (tokens)")
    parser.add_argument("--context-size", type=positive_int, default=128)
    parser.add_argument("--eval-tokens", type=positive_int, default=20_000,
                        help="held-out SQuAD dev tokens for the quality metrics (default: %(default)s)")
    parser.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"],
                        help="dtype of the saved weights (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--center", action="store_true",
                        help="train on mean-centred, rescaled activations and fold both into the weights (needed for "
                             "residual streams with massive constant dimensions, e.g. gemma-3-270m)")
    parser.add_argument("--activations-cache", default=None,
                        help="folder to keep the collected activations in (fp16, ~1 GB per layer per 800k tokens); "
                             "a rerun with the same model/layer/tokens/corpus skips collection")
    args = parser.parse_args(argv)
    for flag, value in (("--target-l0", args.target_l0), ("--pre-act-loss", args.pre_act_loss)):
        if value is not None and args.architecture != "jumprelu":
            parser.error(f"{flag} applies to --architecture jumprelu only; drop it or add --architecture jumprelu")
    if args.target_l0 is not None and args.target_l0 <= 0:
        parser.error(f"--target-l0 must be positive, got {args.target_l0}")
    return args


def cached_activations(args, model, corpus_sha: str) -> dict:
    """Collected activations per layer, read from / written to --activations-cache when given."""
    if args.activations_cache is None:
        return collect_activations(model, args.layer, corpus_texts(args.corpus), args.tokens, args.context_size)
    folder = Path(args.activations_cache)
    paths = {layer: folder / f"{args.model}-L{layer}-{args.tokens}-ctx{args.context_size}-{corpus_sha[:12]}.pt"
             for layer in args.layer}
    if all(p.is_file() for p in paths.values()):
        return {layer: torch.load(p) for layer, p in paths.items()}
    acts = collect_activations(model, args.layer, corpus_texts(args.corpus), args.tokens, args.context_size)
    folder.mkdir(parents=True, exist_ok=True)
    for layer, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(acts[layer], tmp)
        tmp.replace(path)
    return acts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_corpus(args.corpus)
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    model = load_model(args.model, device="cpu")
    for layer in args.layer:
        model.layer(layer)  # range check before an hour of work
    corpus_sha = file_sha256(args.corpus) if Path(args.corpus).is_file() else args.corpus
    acts = cached_activations(args, model, corpus_sha)
    collect_seconds = time.perf_counter() - started
    dev_contexts = list(group_by_context(to_examples(load_squad())))
    for layer in args.layer:
        layer_start = time.perf_counter()
        cfg = TrainConfig(model=args.model, layer=layer, width=args.width or 8 * model.d_model,
                          architecture=args.architecture, tokens=args.tokens, corpus=Path(args.corpus).name,
                          corpus_sha256=corpus_sha, context_size=args.context_size, batch_size=args.batch_size,
                          lr=args.lr, l1_coefficient=args.l1, jumprelu_sparsity_coefficient=args.sparsity,
                          target_l0=args.target_l0, pre_act_loss=args.pre_act_loss,
                          seed=args.seed, center=args.center)
        sae = train_sae(acts[layer], cfg, hook_name=f"blocks.{layer}.hook_resid_post")
        train_seconds = time.perf_counter() - layer_start
        quality = evaluate_sae(model, sae, layer, iter(dev_contexts), n_tokens=args.eval_tokens)
        out = Path(args.out) / args.model / f"L{layer}"
        sae.to(dtype=getattr(torch, args.dtype))
        sae.cfg.dtype = args.dtype
        sae.save_model(out)
        for path in out.iterdir():  # SAELens writes the weights 0600; shipped files must be world-readable
            path.chmod(0o644)
        saved = quality
        if args.dtype != "float32":  # the shipped (reduced-precision) weights, upcast, must score the same
            from sae_lens import SAE

            saved = evaluate_sae(model, SAE.load_from_disk(out, dtype="float32"), layer, iter(dev_contexts),
                                 n_tokens=args.eval_tokens)
        card = {"training": config_record(cfg), "command": shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                "device": "cpu", "threads": torch.get_num_threads(),
                "activation_seconds": round(collect_seconds, 1), "train_seconds": round(train_seconds, 1),
                "quality_fp32": quality.as_dict(), f"quality_{args.dtype}": saved.as_dict(),
                "eval_data": "SQuAD v1.1 dev contexts in file order (held out; never trained on)",
                "eval_tokens": args.eval_tokens}
        atomic_write_json(out / "gradsae_card.json", card)
        print(json.dumps({"layer": layer, **saved.as_dict(), "train_seconds": round(train_seconds, 1)}))
    return 0


if __name__ == "__main__":
    run(main)
