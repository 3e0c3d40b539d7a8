"""Stand-ins for the large hub models and their SAEs, at true shapes, in an offline Hugging Face cache.

The hub is out of reach here, so `google/gemma-2-9b-it` + Gemma Scope and `meta-llama/Llama-3.1-8B` + Llama
Scope are rebuilt with random weights and the public configs, in the exact on-disk layout the hub serves,
under `ROOT/hub` (Hugging Face's cache layout: `models--org--name/refs/main` + `snapshots/<commit>/…`).
With `HF_HOME=ROOT HF_HUB_OFFLINE=1`, the product's own loading paths resolve them as online:
`transformers` reads the model repo, and SAELens's `SAE.from_pretrained(release, sae_id)` reads the SAE repo
through its registry and its own converter (`gemma_2`: `params.npz`; `llama_scope`: `hyperparams.json` +
`checkpoints/final.safetensors`). Only the weights are fake.

What differs from the real repositories, and why:
- layers: truncated to `n_layers` (the SAE layer + the layers above it that a measurement needs);
- tokenizer: borrowed from an embedded model (Gemma 2 ← gemma3-270m's, whose ids on SQuAD stay below
  Gemma 2's 256,000; Llama ← SmolLM2's, 49,152 ids), with Gemma 2 IT's chat markup written in; special
  token ids in the config follow the borrowed tokenizer;
- SAE values: random unit-norm directions, with a JumpReLU threshold calibrated on the stand-in model's
  own residual stream so that about `target_l0` latents fire per token (real SAEs: 50-150).
`small=True` keeps what the loaders fix (Gemma Scope's d_in is read from the repo id, its width from the
folder name, so the narrowest canonical width, 16k, at d_model 3,584) and shrinks the rest (heads, MLP,
the Llama Scope width; the vocabulary to SmolLM2's tokenizer for both), for tests.

Pitfall: huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported. Symptom: the stand-in is
"not found" although the cache is built. Wrong: setting `os.environ` in a process that already imported
transformers. Right: start a fresh process with the environment of `hub_env(root)` (as `benchmarks/scale.py`
and the tests do).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

CALIBRATION_TEXT = ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, "
                    "a region in France. Question: In what country is Normandy located? Answer: France")

# Gemma 2 IT's chat markup (turns `<start_of_turn>{user|model}\n…<end_of_turn>\n`, BOS first).
GEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] "
    "| trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")

GEMMA2_9B = {  # google/gemma-2-9b-it config.json (public)
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "attention_bias": False,
    "attention_dropout": 0.0, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
    "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 3584, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 8192, "num_attention_heads": 16,
    "num_hidden_layers": 42, "num_key_value_heads": 8, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0, "sliding_window": 4096, "vocab_size": 256000, "torch_dtype": "bfloat16",
    "tie_word_embeddings": True}
LLAMA31_8B = {  # meta-llama/Llama-3.1-8B config.json (public)
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "attention_dropout": 0.0,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 131072, "mlp_bias": False, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "vocab_size": 128256, "torch_dtype": "bfloat16"}


@dataclass(frozen=True)
class StandIn:
    """One hub model + SAE pair: what to write so that `--model repo_id --sae release:sae_id` resolves offline.

    The SAE's repository and folder come from SAELens's registry (`registry_location`), as online.
    sae_layer: the layer the SAE's hook names (the model needs at least sae_layer + 1 layers).
    small: config overrides of the small version; small_sae: its (sae_id, d_sae).
    """

    name: str
    repo_id: str
    config: dict[str, Any]
    tokenizer_from: str
    chat_template: str | None
    sae_release: str
    sae_id: str
    sae_format: str  # "gemma_scope" or "llama_scope"
    sae_layer: int
    d_sae: int
    small: dict[str, Any] = field(default_factory=dict)
    small_sae: tuple[str, int] = ("", 0)

    @property
    def sae_spec(self) -> str:
        return f"{self.sae_release}:{self.sae_id}"


_SMALL_DIMS = {"intermediate_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 49152}
STANDINS = {
    "gemma2-9b-it": StandIn(
        "gemma2-9b-it", "google/gemma-2-9b-it", GEMMA2_9B, "gemma3-270m", GEMMA2_CHAT_TEMPLATE,
        "gemma-scope-9b-it-res-canonical", "layer_9/width_131k/canonical", "gemma_scope", 9, 131072,
        small={**_SMALL_DIMS, "head_dim": 64, "query_pre_attn_scalar": 64},
        small_sae=("layer_9/width_16k/canonical", 16384)),  # Gemma Scope's width is its folder name
    "llama3.1-8b": StandIn(
        "llama3.1-8b", "meta-llama/Llama-3.1-8B", LLAMA31_8B, "smollm2-135m-it", None,
        "llama_scope_lxr_8x", "l15r_8x", "llama_scope", 15, 32768,
        small={**_SMALL_DIMS, "hidden_size": 64}, small_sae=("l15r_8x", 512)),
}


@dataclass(frozen=True)
class Built:
    """A built stand-in: the names to pass (`--model`, `--sae`) and the cache they resolve from."""

    root: str
    model: str
    sae: str
    layer: int
    n_layers: int
    d_model: int
    d_sae: int

    def env(self) -> dict[str, str]:
        return hub_env(Path(self.root))


def hub_env(root: Path) -> dict[str, str]:
    """The environment of a process that resolves hub names from `root` only (never the network)."""
    return {**os.environ, "HF_HOME": str(root), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def snapshot_dir(root: Path, repo_id: str) -> Path:
    """`ROOT/hub/models--org--name/snapshots/<commit>/`, with `refs/main` naming that commit."""
    repo = root / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def model_config(spec: StandIn, n_layers: int, small: bool) -> dict[str, Any]:
    cfg = {**spec.config, **(spec.small if small else {}), "num_hidden_layers": n_layers}
    if spec.config["model_type"] == "gemma2":
        cfg["layer_types"] = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layers)]
    return cfg


SMALL_TOKENIZER = "smollm2-135m-it"  # the small versions' vocabulary (49,152)


def write_tokenizer(spec: StandIn, snap: Path, vocab_size: int, small: bool) -> Any:
    from transformers import AutoTokenizer

    from gradsae_nn.models.embedded import EMBEDDED_MODELS, ensure_converted

    source = ensure_converted(EMBEDDED_MODELS[SMALL_TOKENIZER if small else spec.tokenizer_from])
    tok = AutoTokenizer.from_pretrained(source)
    tok.chat_template = spec.chat_template  # None: a base model, prompted few-shot
    tok.save_pretrained(snap)
    if spec.chat_template is None:
        (snap / "chat_template.jinja").unlink(missing_ok=True)
    top = max(tok(CALIBRATION_TEXT)["input_ids"] + list(tok.all_special_ids))
    if top >= vocab_size:
        raise ValueError(f"{spec.tokenizer_from}'s tokenizer emits id {top} ≥ the stand-in's vocabulary {vocab_size}")
    return tok


def write_model(spec: StandIn, root: Path, n_layers: int, small: bool, seed: int) -> tuple[Any, Any]:
    """Random weights in bf16 (as the hub ships them), config, tokenizer and generation config."""
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    snap = snapshot_dir(root, spec.repo_id)
    cfg_dict = model_config(spec, n_layers, small)
    tok = write_tokenizer(spec, snap, cfg_dict["vocab_size"], small)
    cfg_dict.update(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    (snap / "config.json").write_text(json.dumps(cfg_dict, indent=2))
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(snap)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(snap, safe_serialization=True)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                     pad_token_id=tok.pad_token_id).save_pretrained(snap)
    return model, tok


@torch.no_grad()
def residual(model: Any, tok: Any, layer: int) -> torch.Tensor:
    """`[tokens, d_model]` fp32 output of decoder layer `layer` on the calibration text. (A forward hook, not
    `hidden_states[layer + 1]`: transformers returns the *last* layer's hidden state after the final norm.)"""
    ids = tok(CALIBRATION_TEXT, return_tensors="pt")["input_ids"]
    seen = []
    handle = model.model.layers[layer].register_forward_hook(
        lambda _m, _i, out: seen.append((out[0] if isinstance(out, tuple) else out)[0].float()))
    try:
        model(ids)
    finally:
        handle.remove()
    return seen[0]


def random_sae(x: torch.Tensor, d_sae: int, target_l0: int, seed: int) -> dict[str, torch.Tensor]:
    """Unit-norm random encoder/decoder directions; threshold = the pre-activation quantile at which about
    `target_l0` latents per token of `x` fire. Keys and layouts of Gemma Scope's params.npz."""
    d_in = x.shape[-1]
    g = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d_sae, d_in, generator=g)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    w_enc = w_dec.T.contiguous()
    pre = (x @ w_enc).flatten()
    k = max(1, pre.numel() - target_l0 * x.shape[0])
    threshold = float(pre.kthvalue(k).values)
    return {"W_enc": w_enc, "W_dec": w_dec, "b_enc": torch.zeros(d_sae), "b_dec": torch.zeros(d_in),
            "threshold": torch.full((d_sae,), max(threshold, 1e-6))}


def registry_location(release: str, sae_id: str) -> tuple[str, str]:
    """(hub repo, folder) that SAELens's registry gives `release:sae_id`."""
    from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

    return get_repo_id_and_folder_name(release, sae_id)


def layer_of(release: str, sae_id: str) -> int:
    """The layer of `release:sae_id`, from its registry folder (`layer_9/…`, `…-L15R-8x`)."""
    import re

    folder = registry_location(release, sae_id)[1]
    match = re.search(r"layer_(\d+)/|-L(\d+)[RAM]-", folder)
    if match is None:
        raise ValueError(f"no layer in {folder!r}")
    return int(match.group(1) or match.group(2))


def write_sae(spec: StandIn, root: Path, sae_id: str, params: dict[str, torch.Tensor]) -> None:
    """The SAE files in the repo's own format (fp32 npz for Gemma Scope; hyperparams + safetensors for Llama Scope)."""
    import numpy as np

    repo, folder = registry_location(spec.sae_release, sae_id)
    target = snapshot_dir(root, repo) / folder
    target.mkdir(parents=True, exist_ok=True)
    if spec.sae_format == "gemma_scope":
        np.savez(target / "params.npz", **{k: v.numpy() for k, v in params.items()})
        return
    from safetensors.torch import save_file

    d_sae, d_in = params["W_dec"].shape
    # SAELens folds `s` = the registry's norm_scaling_factor into W_enc and multiplies the threshold by
    # sqrt(d_in) / dataset_average_activation_norm.in; choosing that norm as sqrt(d_in) / s keeps the
    # effective encoder equal to `params`.
    from sae_lens.loading.pretrained_saes_directory import get_norm_scaling_factor

    s = float(get_norm_scaling_factor(spec.sae_release, sae_id) or 1.0)
    hook = f"blocks.{layer_of(spec.sae_release, sae_id)}.hook_resid_post"
    hyper = {"d_model": d_in, "d_sae": d_sae, "hook_point_in": hook, "hook_point_out": hook, "act_fn": "jumprelu",
             "jump_relu_threshold": float(params["threshold"][0]) / s,
             "dataset_average_activation_norm": {"in": d_in ** 0.5 / s, "out": d_in ** 0.5 / s}}
    (target / "hyperparams.json").write_text(json.dumps(hyper, indent=2))
    (target / "checkpoints").mkdir(exist_ok=True)
    save_file({"encoder.weight": (params["W_enc"].T / s).contiguous(), "encoder.bias": params["b_enc"],
               "decoder.weight": params["W_dec"].T.contiguous(), "decoder.bias": params["b_dec"]},
              target / "checkpoints" / "final.safetensors")


def build(root: Path, name: str, n_layers: int | None = None, small: bool = False, target_l0: int = 100,
          seed: int = 0, sae_id: str | None = None) -> Built:
    """Write stand-in `name` (a key of STANDINS) under `root`; `n_layers` defaults to the SAE layer + 2.
    `sae_id`: another SAE of the same release and width (Llama Scope: `l0r_8x` needs only layer 0)."""
    spec = STANDINS[name]
    sae_id, d_sae = spec.small_sae if small else (sae_id or spec.sae_id, spec.d_sae)
    layer = layer_of(spec.sae_release, sae_id)
    n_layers = n_layers or layer + 2
    if n_layers <= layer:
        raise ValueError(f"{name}: the SAE is at layer {layer}; build at least {layer + 1} layers")
    model, tok = write_model(spec, root, n_layers, small, seed)
    x = residual(model, tok, layer)
    del model
    write_sae(spec, root, sae_id, random_sae(x, d_sae, target_l0, seed))
    return Built(root=str(root), model=spec.repo_id, sae=f"{spec.sae_release}:{sae_id}", layer=layer,
                 n_layers=n_layers, d_model=int(x.shape[-1]), d_sae=d_sae)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="cache folder to build (use as HF_HOME with HF_HUB_OFFLINE=1)")
    parser.add_argument("--which", choices=sorted(STANDINS), required=True)
    parser.add_argument("--layers", type=int, default=None, help="decoder layers to keep (default: SAE layer + 2)")
    parser.add_argument("--small", action="store_true", help="the small version (tests)")
    parser.add_argument("--sae-id", default=None, help="another SAE id of the release (default: the stand-in's)")
    args = parser.parse_args(argv)
    built = build(args.root, args.which, args.layers, args.small, sae_id=args.sae_id)
    print(json.dumps(built.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
