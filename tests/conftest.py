"""Shared fixtures: the real embedded models, loaded once per test session."""

import pytest


def pytest_collection_modifyitems(config, items):
    """`remote` tests start a local NDIF server (~1.5 min, ~4 GB RAM), `cuda` tests need a GPU and `extended`
    tests repeat a mechanism the default suite already checks on another model or variant: each runs only when
    the -m expression names it (`-m remote`, `-m cuda`, `-m extended`), never as a side effect of `pytest` or
    `-m "not slow"`."""
    for marker in ("remote", "cuda", "extended"):
        if marker in (config.option.markexpr or ""):
            continue
        selected = [item for item in items if marker not in item.keywords]
        if len(selected) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if marker in item.keywords])
            items[:] = selected


# the session fixture that loads each embedded model, by the model's registered name
MODEL_FIXTURES = {"smollm2-135m-it": "smollm", "gemma3-270m": "gemma", "qwen2.5-coder-0.5b-it": "qwen"}


@pytest.fixture(scope="session")
def smollm():
    from gradsae_nn.models import load_model

    return load_model("smollm2-135m-it", device="cpu")


@pytest.fixture(scope="session")
def gemma():
    from gradsae_nn.models import load_model

    return load_model("gemma3-270m", device="cpu")


@pytest.fixture(scope="session")
def qwen():
    from gradsae_nn.models import load_model

    return load_model("qwen2.5-coder-0.5b-it", device="cpu")


@pytest.fixture(scope="session")
def dev_examples():
    from gradsae_nn.data.squad import load_squad, to_examples

    return to_examples(load_squad())


def save_tiny_llama(path):
    """Save a randomly initialised 2-layer Llama (hidden 64) with SmolLM2's tokenizer and chat template as an
    HF folder at `path`: a real model class at toy size, for end-to-end experiment and benchmark tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gradsae_nn.models.embedded import EMBEDDED_MODELS, ensure_converted

    tokenizer = AutoTokenizer.from_pretrained(ensure_converted(EMBEDDED_MODELS["smollm2-135m-it"]))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_sae(model, path, layer: int = 1):
    """Save a random SAELens SAE (256 latents, ~20% active) fitted to the residual scale of `model` (a loaded
    tiny Llama) at `layer`, at `path`; returns `path`."""
    import torch

    ids = model.tokenizer("Question: what is the capital of France?\nAnswer: Paris", return_tensors="pt")
    with torch.no_grad(), model.lm.trace(dict(ids)):
        x = model.layer(layer).output.save()
    make_sae("standard", d_in=64, d_sae=256, layer=layer, resid_std=float(x[0, 1:].std()), active=0.2).save_model(path)
    return path


def make_sae(architecture: str, d_in: int, d_sae: int = 2048, layer: int = 6, seed: int = 0, active: float = 0.05,
             resid_std: float = 1.0):
    """A random SAELens SAE whose latents fire on roughly `active` of inputs whose coordinates have
    standard deviation `resid_std`.

    Encoder = decoder transpose with a negative bias, so activations are sparse and the latents overlap
    the residual directions like a trained SAE's would.
    """
    from statistics import NormalDist

    import torch
    from sae_lens import (JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE,
                          TopKSAEConfig)
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(seed)
    metadata = SAEMetadata(hook_name=f"blocks.{layer}.hook_resid_post")
    cls, cfg = {
        "standard": (StandardSAE, StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=metadata)),
        "jumprelu": (JumpReLUSAE, JumpReLUSAEConfig(d_in=d_in, d_sae=d_sae, metadata=metadata)),
        "topk": (TopKSAE, TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=32, metadata=metadata)),
    }[architecture]
    sae = cls(cfg)
    with torch.no_grad():
        w = torch.randn(d_sae, d_in)
        sae.W_dec.copy_(w / w.norm(dim=-1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T * 0.5)
        sae.b_dec.copy_(torch.randn(d_in) * 0.05)
        # bias at the (1 - active) quantile of a projection onto a unit row: about `active` of tokens fire
        sae.b_enc.fill_(-NormalDist().inv_cdf(1 - active) * 0.5 * resid_std)
        if architecture == "jumprelu":  # thresholds on the activation scale, so the jump really gates
            sae.threshold.copy_(torch.rand(d_sae) * resid_std)
    sae.requires_grad_(False)
    return sae


TINY_LAYER = 1


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """A random 2-layer Llama with SmolLM2's tokenizer and a random SAE at `TINY_LAYER`, saved once per module
    (the fault-injection suites run the scripts on them)."""
    from gradsae_nn.models import load_model

    model_dir = save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    tiny = load_model(str(model_dir), device="cpu")
    return model_dir, save_tiny_sae(tiny, tmp_path_factory.mktemp("tiny-sae"), TINY_LAYER)
