"""The SAE scripts' bodies: train SAEs and write them with their cards; count dead latents of a shipped SAE."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import torch

from ..core.sae import load_sae, shipped_sae_root
from ..data.squad import group_by_context, load_squad, to_examples
from ..errors import OptionError, literal
from ..models import LoadedModel, load_model
from ..results.records import atomic_write_json, file_sha256
from .config import DeadLatentsConfig, TrainSAEConfig
from .quality import dead_fraction, evaluate_sae
from .train import TrainConfig, check_corpus, collect_activations, config_record, corpus_texts, train_sae


def cached_activations(config: TrainSAEConfig, model: LoadedModel, corpus_sha: str) -> dict[int, torch.Tensor]:
    """Collected activations per layer, read from / written to `activations_cache` when given."""
    layers = list(config.layer)
    if config.activations_cache is None:
        return collect_activations(model, layers, corpus_texts(config.corpus), config.tokens, config.context_size)
    folder = Path(config.activations_cache)
    paths = {layer: folder / f"{config.model}-L{layer}-{config.tokens}-ctx{config.context_size}-{corpus_sha[:12]}.pt"
             for layer in layers}
    if all(p.is_file() for p in paths.values()):
        return {layer: torch.load(p) for layer, p in paths.items()}
    acts = collect_activations(model, layers, corpus_texts(config.corpus), config.tokens, config.context_size)
    folder.mkdir(parents=True, exist_ok=True)
    for layer, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(acts[layer], tmp)
        tmp.replace(path)
    return acts


def train_saes(config: TrainSAEConfig) -> list[dict]:
    """Train one SAE per layer, save each in SAELens format with its card under `out/<model>/L<layer>/`, and
    return each card's quality line."""
    check_corpus(config.corpus)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = load_model(config.model, device="cpu")
    for layer in config.layer:
        model.layer(layer)  # range check before an hour of work
    corpus_sha = file_sha256(config.corpus) if Path(config.corpus).is_file() else config.corpus
    acts = cached_activations(config, model, corpus_sha)
    collect_seconds = time.perf_counter() - started
    dev_contexts = list(group_by_context(to_examples(load_squad())))
    lines = []
    for layer in config.layer:
        layer_start = time.perf_counter()
        cfg = TrainConfig(model=config.model, layer=layer, width=config.width or 8 * model.d_model,
                          architecture=config.architecture, tokens=config.tokens, corpus=Path(config.corpus).name,
                          corpus_sha256=corpus_sha, context_size=config.context_size, batch_size=config.batch_size,
                          lr=config.lr, l1_coefficient=config.l1, jumprelu_sparsity_coefficient=config.sparsity,
                          target_l0=config.target_l0, pre_act_loss=config.pre_act_loss, seed=config.seed,
                          center=config.center)
        sae = train_sae(acts[layer], cfg, hook_name=f"blocks.{layer}.hook_resid_post")
        train_seconds = time.perf_counter() - layer_start
        quality = evaluate_sae(model, sae, layer, iter(dev_contexts), n_tokens=config.eval_tokens)
        out = Path(config.out) / config.model / f"L{layer}"
        sae.to(dtype=getattr(torch, config.dtype))
        sae.cfg.dtype = config.dtype
        sae.save_model(out)
        for path in out.iterdir():  # SAELens writes the weights 0600; shipped files must be world-readable
            path.chmod(0o644)
        saved = quality
        if config.dtype != "float32":  # the shipped (reduced-precision) weights, upcast, must score the same
            from sae_lens import SAE

            saved = evaluate_sae(model, SAE.load_from_disk(out, dtype="float32"), layer, iter(dev_contexts),
                                 n_tokens=config.eval_tokens)
        card = {"training": config_record(cfg), "command": shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                "device": "cpu", "threads": torch.get_num_threads(),
                "activation_seconds": round(collect_seconds, 1), "train_seconds": round(train_seconds, 1),
                "quality_fp32": quality.as_dict(), f"quality_{config.dtype}": saved.as_dict(),
                "eval_data": "SQuAD v1.1 dev contexts in file order (held out; never trained on)",
                "eval_tokens": config.eval_tokens}
        atomic_write_json(out / "gradsae_card.json", card)
        lines.append({"layer": layer, **saved.as_dict(), "train_seconds": round(train_seconds, 1)})
        print(json.dumps(lines[-1]))
    return lines


def count_dead(config: DeadLatentsConfig) -> float:
    """The dead fraction of a shipped SAE on `tokens` held-out dev tokens; recorded in its card if asked."""
    card_path = shipped_sae_root() / config.sae / "gradsae_card.json"
    if not card_path.is_file():
        raise OptionError(f"no shipped SAE named {literal(config.sae)} in {{sae}}; shipped SAEs live under "
                          f"{shipped_sae_root()}")
    card = json.loads(card_path.read_text())
    model_name, layer = card["training"]["model"], int(card["training"]["layer"])
    model = load_model(model_name, device="cpu")
    sae = load_sae(config.sae, model, layer)
    contexts = iter(list(group_by_context(to_examples(load_squad()))))
    dead = dead_fraction(model, sae, layer, contexts, config.tokens, card["training"]["context_size"])
    print(f"{config.sae}: dead latents on {config.tokens} held-out tokens: {dead:.4f}")
    if config.update_card:
        card["dead_fraction_more_tokens"] = {"n_tokens": config.tokens, "dead_fraction": round(dead, 4),
                                             "command": shlex.join(["experiments/sae_dead_latents.py", *sys.argv[1:]])}
        atomic_write_json(card_path, card)
    return dead
