"""Dead latents of a shipped or saved SAE on more held-out SQuAD dev tokens than its card's full evaluation.

    python experiments/sae_dead_latents.py --sae gemma3-270m/L9 --tokens 20000 [--update-card]

A latent counts as dead when it never fires on the tokens looked at, so the fraction depends on how many
tokens that is; the full evaluation (with CE loss) is slow for big vocabularies and uses ~4k tokens.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gradsae_nn.cli import positive_int, run  # noqa: E402
from gradsae_nn.errors import UsageError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from gradsae_nn.models import load_model
    from gradsae_nn.sae import load_sae, shipped_sae_root
    from gradsae_nn.sae_eval import dead_fraction
    from gradsae_nn.squad import group_by_context, load_squad, to_examples

    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sae", required=True, help="shipped SAE name, e.g. gemma3-270m/L9")
    parser.add_argument("--tokens", type=positive_int, default=20_000)
    parser.add_argument("--update-card", action="store_true", help="record the result in the SAE's gradsae_card.json")
    args = parser.parse_args(argv)
    card_path = shipped_sae_root() / args.sae / "gradsae_card.json"
    if not card_path.is_file():
        raise UsageError(f"no shipped SAE named {args.sae!r}; shipped SAEs live under {shipped_sae_root()}")
    card = json.loads(card_path.read_text())
    model_name, layer = card["training"]["model"], int(card["training"]["layer"])
    model = load_model(model_name, device="cpu")
    sae = load_sae(args.sae, model, layer)
    contexts = iter(list(group_by_context(to_examples(load_squad()))))
    dead = dead_fraction(model, sae, layer, contexts, args.tokens, card["training"]["context_size"])
    print(f"{args.sae}: dead latents on {args.tokens} held-out tokens: {dead:.4f}")
    if args.update_card:
        card["dead_fraction_more_tokens"] = {"n_tokens": args.tokens, "dead_fraction": round(dead, 4),
                                             "command": "experiments/sae_dead_latents.py " + " ".join(argv or sys.argv[1:])}
        tmp = card_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(card, indent=2) + "\n")
        tmp.replace(card_path)
    return 0


if __name__ == "__main__":
    run(main)
