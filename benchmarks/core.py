"""GradSAE core overheads, measured side by side in one process on the embedded model.

    python benchmarks/core.py [--repeats 7] [--layer 15] [--model smollm2-135m-it]

1. GradSAE scoring of one SQuAD example (nnsight trace, lossless splice, forward + backward)
   vs plain PyTorch forward + backward to the layer (a forward hook, `torch.autograd.grad`).   goal ≤ 1.10×
2. Edited greedy generate, 32 new tokens, 20 latents zeroed at every step
   vs unedited Hugging Face `generate` (KV cache on both).                                       goal ≤ 1.15×

Repeats are interleaved (A, B, A, B, ...) after a warm-up and the median is reported: the ratio is the
claim, absolute times are context (shared, noisy machines).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from gradsae_nn.editing import edited_generate  # noqa: E402
from gradsae_nn.models import load_model  # noqa: E402
from gradsae_nn.prompts import get_template, prompt_ids  # noqa: E402
from gradsae_nn.sae import load_sae, shipped_sae_names  # noqa: E402
from gradsae_nn.scoring import score_examples  # noqa: E402
from gradsae_nn.selection import select  # noqa: E402
from gradsae_nn.splice import LatentEdit  # noqa: E402
from gradsae_nn.squad import load_squad, to_examples  # noqa: E402
from gradsae_nn.targets import ScoringInput, build_batch, target_values  # noqa: E402


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in alternation after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def random_sae(d_in: int, d_sae: int, layer: int):
    """A ReLU SAE of the shipped width with random weights: the timings do not depend on training."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(0)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae,
                                        metadata=SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post")))
    with torch.no_grad():
        sae.b_enc.fill_(-2.0)
    return sae.requires_grad_(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-it")
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--sae", default=None, help="SAE to use (default: a shipped one for the layer, else random)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_model(args.model, device="cpu")
    name = args.sae or f"{args.model}/L{args.layer}"
    sae = (load_sae(name, model, args.layer) if args.sae or name in shipped_sae_names()
           else random_sae(model.d_model, 8 * model.d_model, args.layer))
    example = to_examples(load_squad().select(range(1)))[0]
    prompt = prompt_ids(model, get_template(None, model), example)
    answer = tuple(model.tokenizer(" Denver Broncos", add_special_tokens=False)["input_ids"])
    scoring_input = ScoringInput(tuple(prompt), answer)
    hf = model.lm._module
    layer_module = hf.model.layers[args.layer]

    def plain_forward_backward() -> None:
        batch = build_batch([scoring_input], pad_id=0)
        store = {}

        def hook(_m, _i, out):
            out.requires_grad_(True)
            store["x"] = out

        handle = layer_module.register_forward_hook(hook)
        try:
            logits = hf(**batch.model_inputs("cpu")).logits
        finally:
            handle.remove()
        torch.autograd.grad(target_values(logits, batch, "answer-logprob").sum(), store["x"])

    scores = score_examples(model, sae, args.layer, [scoring_input])[0]
    top20 = select(scores.gradsae, 20, "top", scores.n_active_last).latents
    edit = LatentEdit(zero=top20)
    ids = torch.tensor([prompt])

    def unedited_generate() -> None:
        with torch.no_grad():
            hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, min_new_tokens=32,
                        do_sample=False, use_cache=True, pad_token_id=model.tokenizer.pad_token_id)

    def edited() -> None:
        edited_generate(model, sae, args.layer, [prompt], [edit], 32, stop_at_newline=False)

    t_score = interleaved({"plain": plain_forward_backward,
                           "gradsae": lambda: score_examples(model, sae, args.layer, [scoring_input])}, args.repeats)
    t_gen = interleaved({"plain": unedited_generate, "edited": edited}, args.repeats)
    print(f"model {args.model}, layer {args.layer}, SAE d_sae {sae.cfg.d_sae} ({sae.cfg.architecture()}), "
          f"prompt {len(prompt)} tokens, {args.threads} threads, median of {args.repeats}")
    print("| what | ours (s) | baseline (s) | ratio | goal |")
    print("|---|---|---|---|---|")
    print(f"| GradSAE scoring vs plain fwd+bwd | {t_score['gradsae']:.3f} | {t_score['plain']:.3f} | "
          f"{t_score['gradsae'] / t_score['plain']:.3f}× | ≤ 1.10× |")
    print(f"| edited generate (32 tok) vs unedited HF generate | {t_gen['edited']:.3f} | {t_gen['plain']:.3f} | "
          f"{t_gen['edited'] / t_gen['plain']:.3f}× | ≤ 1.15× |")


if __name__ == "__main__":
    main()
