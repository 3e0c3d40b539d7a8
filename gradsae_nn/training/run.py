"""The SAE scripts' bodies: write training questions, train SAEs with their cards, measure an SAE's quality."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

import torch

from ..core.sae import load_sae, shipped_sae_root
from ..data.prompts import get_template
from ..errors import OptionError, literal
from ..models import LoadedModel, load_model
from ..results.records import atomic_write_json, file_sha256, read_jsonl
from .collect import collect_activations
from .config import SAEQualityConfig, TrainSAEConfig, WriteQuestionsConfig
from .corpus import TrainSequence, mixed, prompt_sequences, read_paragraphs, text_sequences, write_questions
from .quality import SAMPLES, evaluate_sae, massive_threshold, measure, quality_sample
from .texts import check_corpus, corpus_texts
from .train import TrainConfig, config_record, train_sae

THRESHOLD_SEQUENCES = 48  # corpus sequences the massive-token thresholds are measured on


def command_line() -> str:
    return shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])


def questions_main(config: WriteQuestionsConfig) -> int:
    """experiments/write_questions.py: the questions file, written (or completed) in place."""
    model = load_model(config.model, device="cpu")
    paragraphs = read_paragraphs(config.paragraphs)
    usable = write_questions(model, paragraphs, Path(config.out), config.n, config.seed, config.batch_size)
    print(f"{len(usable)} of {config.n} paragraphs got a question; {config.out} (sha256 {file_sha256(config.out)})")
    return len(usable)


def corpus(config: TrainSAEConfig, model: LoadedModel) -> tuple[Iterator[TrainSequence], str | None]:
    """The training sequences (paragraphs, and prompts when there are questions) and the prompts' template."""
    paragraphs = list(corpus_texts(config.corpus))
    texts = text_sequences(model, paragraphs, config.max_length)
    if config.questions is None:
        return texts, None
    questions = [r for r in read_jsonl(Path(config.questions)) if r.get("question")]
    if not questions:
        raise OptionError(f"{literal(config.questions)} holds no questions; write them with "
                          f"experiments/write_questions.py (or drop {{questions}})")
    template = get_template(config.prompt, model)
    prompts = prompt_sequences(model, template, paragraphs, questions, config.seed)
    return mixed(prompts, texts, config.prompt_share), template.name


def thresholds(config: TrainSAEConfig, model: LoadedModel) -> dict[int, float]:
    """The massive-token threshold of each layer, on the corpus's first sequences."""
    sequences, _ = corpus(config, model)
    head = [list(s.ids) for _, s in zip(range(THRESHOLD_SEQUENCES), sequences)]
    return {layer: massive_threshold(model, layer, head) for layer in config.layer}


def bf16_cpu_note(cpuinfo: str | None = None) -> str | None:
    """One line for stderr when this CPU has no bfloat16 matrix instructions (`avx512_bf16`/`amx_bf16` in
    /proc/cpuinfo): there a bfloat16 collection is emulated and far slower than float32 (README, Training
    SAEs: 7.3x slower on an AVX2-only AMD EPYC). None where the flags are there or cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None)
    if flags is None or {"avx512_bf16", "amx_bf16"} & set(flags):
        return None
    return ("note: this CPU has no bfloat16 matrix instructions (avx512_bf16/amx_bf16), so --collect-dtype bfloat16 "
            "is emulated and several times slower than float32 here; pass --collect-dtype float32")


def activations(config: TrainSAEConfig, model: LoadedModel, limits: dict[int, float], digest: list) -> dict:
    """Collected activations per layer, read from / written to `activations_cache` when given: one file per
    layer, keyed by what decides its content (`digest`: corpus, questions, template, share, length, the
    collecting dtype; and the layer's massive-token threshold), so any subset of the layers of an earlier run
    is read back. With `collect_dtype` bfloat16 a bfloat16 copy of the model collects (`model` stays float32)."""
    if config.collect_dtype != "float32":
        if config.collect_dtype == "bfloat16" and (note := bf16_cpu_note()):
            print(note, file=sys.stderr)
        model = load_model(config.model, device="cpu", dtype=config.collect_dtype)
        digest = [*digest, config.collect_dtype]
    sequences, _ = corpus(config, model)
    layers = list(config.layer)
    if config.activations_cache is None:
        return collect_activations(model, layers, sequences, config.tokens, limits)
    folder = Path(config.activations_cache)
    keys = {layer: hashlib.sha256(json.dumps([*digest, limits[layer]]).encode()).hexdigest()[:12] for layer in layers}
    paths = {layer: folder / f"{config.model}-L{layer}-{config.tokens}-{keys[layer]}.pt" for layer in layers}
    if all(p.is_file() for p in paths.values()):
        return {layer: torch.load(p) for layer, p in paths.items()}
    shards = folder / f".{config.model}-{config.tokens}-{'-'.join(f'L{layer}_{keys[layer]}' for layer in layers)}"
    acts = collect_activations(model, layers, sequences, config.tokens, limits, shards=shards)
    for layer, path in paths.items():
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(acts[layer], tmp)
        tmp.replace(path)
    shutil.rmtree(shards)
    return acts


def train_main(config: TrainSAEConfig) -> list[dict]:
    """experiments/train_sae.py: one SAE per layer, saved in SAELens format with its card (training config,
    corpus digests, command, timings, quality on both samples, the token plateau) under out/<model>/L<layer>/."""
    check_corpus(config.corpus)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = load_model(config.model, device="cpu")
    for layer in config.layer:
        model.layer(layer)  # range check before an hour of work
    corpus_sha = file_sha256(config.corpus) if Path(config.corpus).is_file() else config.corpus
    questions_sha = file_sha256(config.questions) if config.questions else None
    _, template = corpus(config, model)
    limits = thresholds(config, model)
    acts = activations(config, model, limits, [corpus_sha, questions_sha, template, config.prompt_share,
                                               config.max_length])
    collect_seconds = time.perf_counter() - started
    lines = []
    for layer in config.layer:
        layer_start = time.perf_counter()
        cfg = TrainConfig(model=config.model, layer=layer, width=config.width or 8 * model.d_model,
                          architecture=config.architecture, tokens=config.tokens, corpus=Path(config.corpus).name,
                          corpus_sha256=corpus_sha, questions=Path(config.questions).name if config.questions else None,
                          questions_sha256=questions_sha, prompt=template,
                          prompt_share=config.prompt_share if config.questions else 0.0, max_length=config.max_length,
                          massive_threshold=round(limits[layer], 2), batch_size=config.batch_size, lr=config.lr,
                          l1_coefficient=config.l1, jumprelu_sparsity_coefficient=config.sparsity,
                          target_l0=config.target_l0, pre_act_loss=config.pre_act_loss, seed=config.seed,
                          center=config.center, collect_dtype=config.collect_dtype)
        sae = train_sae(acts[layer], cfg, hook_name=f"blocks.{layer}.hook_resid_post")
        train_seconds = time.perf_counter() - layer_start
        out = Path(config.out) / config.model / f"L{layer}"
        sae.to(dtype=getattr(torch, config.dtype))
        sae.cfg.dtype = config.dtype
        sae.save_model(out)
        for path in out.iterdir():  # SAELens writes the weights 0600; shipped files must be world-readable
            path.chmod(0o644)
        from sae_lens import SAE

        shipped = SAE.load_from_disk(out, dtype="float32")  # the saved (reduced-precision) weights, as loaded
        card = {"training": config_record(cfg), "command": command_line(), "device": "cpu",
                "threads": torch.get_num_threads(), "activation_seconds": round(collect_seconds, 1),
                "train_seconds": round(train_seconds, 1), "weights_dtype": config.dtype,
                "quality": measure(model, shipped, layer, config.eval_tokens, config.dead_tokens),
                "plateau": plateau(config, cfg, acts[layer], model, layer)}
        atomic_write_json(out / "gradsae_card.json", card)
        lines.append({"layer": layer, **{s: card["quality"][s] for s in SAMPLES},
                      "train_seconds": round(train_seconds, 1)})
        print(json.dumps(lines[-1]))
    return lines


def plateau(config: TrainSAEConfig, cfg: TrainConfig, acts: torch.Tensor, model: LoadedModel, layer: int) -> list:
    """Quality on the prompts sample of SAEs trained like `cfg` on the first N tokens, for each N in `plateau`."""
    from dataclasses import replace

    sample = quality_sample(model, "prompts", config.eval_tokens)
    rows = []
    for n in sorted(config.plateau):
        sae = train_sae(acts[:n], replace(cfg, tokens=n), hook_name=f"blocks.{layer}.hook_resid_post")
        q = evaluate_sae(model, sae.to(dtype=getattr(torch, config.dtype)).float(), layer, sample, "prompts")
        rows.append({"tokens": n, "explained_variance": round(q.explained_variance, 4), "l0": round(q.l0, 1),
                     "ce_loss_recovered": round(q.ce_loss_recovered, 4), "kl": round(q.kl, 4)})
    return rows


def card_sae(name: str) -> tuple[Path, dict, LoadedModel, object, int]:
    """(folder, card, model, SAE, layer) of a shipped SAE name or a folder written by train_sae.py."""
    folder = shipped_sae_root() / name
    if not folder.is_dir():
        folder = Path(name).expanduser()
    card_path = folder / "gradsae_card.json"
    if not card_path.is_file():
        raise OptionError(f"no SAE card at {literal(str(card_path))[1:-1]}: pass a shipped SAE name or a folder "
                          f"written by experiments/train_sae.py in {{sae}}")
    card = json.loads(card_path.read_text())
    model_name, layer = card["training"]["model"], int(card["training"]["layer"])
    model = load_model(model_name, device="cpu")
    sae = load_sae(name if (shipped_sae_root() / name).is_dir() else str(folder), model, layer)
    return folder, card, model, sae, layer


def quality_main(config: SAEQualityConfig) -> dict:
    """experiments/sae_quality.py: an SAE's quality on both samples (and, with update_card, into its card)."""
    folder, card, model, sae, layer = card_sae(config.sae)
    card_path = folder / "gradsae_card.json"
    quality = measure(model, sae, layer, config.eval_tokens, config.dead_tokens)
    print(json.dumps(quality, indent=1))
    for sample in SAMPLES:
        print(readme_row(config.sae, card["training"], quality[sample]))
    if config.update_card:
        card["quality"] = quality
        card["quality_command"] = command_line()
        atomic_write_json(card_path, card)
    return quality


def readme_row(name: str, training: dict, q: dict) -> str:
    """The README SAE table's row for one SAE on one sample (`q`: a `measure()` entry)."""
    arch = "JumpReLU" if training["architecture"] == "jumprelu" else "ReLU"
    recipe = training.get("prompt") and f"{training.get('prompt_share', 0):.0%} prompts"
    return (f"| `{name}` | {q['sample']} | {arch}, {training['width']}, {training['tokens'] / 1e6:g}M tok"
            f"{', ' + recipe if recipe else ', paragraphs'} | {q['n_tokens']:,} ({q['n_massive']} massive) | "
            f"{q['explained_variance']:.3f} | {q['normalized_error']:.3f} | {q['max_token_influence']:.4f} | "
            f"{q['l0']:.1f} | {q['dead_fraction_more_tokens']:.1%} | {q['ce_loss_recovered']:.3f} | {q['kl']:.3f} |")
