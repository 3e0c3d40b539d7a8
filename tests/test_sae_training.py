"""SAE training end to end (tiny): activations → SAELens SAETrainer → folded inference SAE → card."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gradsae_nn.core.sae import hook_layer, load_sae, shipped_sae_names, shipped_sae_root
from gradsae_nn.models import DEFAULT_MODEL


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_sae_script_end_to_end(tmp_path):
    """Paragraphs and prompts in the experiments' template (from written questions) → SAEs with their cards."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"context": f"Paragraph {i} about the history of the city of Paris, "
                                            f"its rivers, bridges and {i * 7} museums."}) for i in range(200)))
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps({"paragraph": i, "question": f"How many museums in paragraph {i}?"})
                                   for i in range(0, 200, 7)))
    out = tmp_path / "saes"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "train_sae.py"), "--layer", "2", "4",
                           "--width", "256", "--tokens", "2048", "--plateau", "1024", "--batch-size", "256",
                           "--eval-tokens", "200", "--dead-tokens", "400", "--corpus", str(corpus),
                           "--questions", str(questions), "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for layer in (2, 4):
        folder = out / "smollm2-135m-it" / f"L{layer}"
        card = json.loads((folder / "gradsae_card.json").read_text())
        training = card["training"]
        assert training["layer"] == layer and training["tokens"] == 2048 and training["prompt"] == "chat-span-3shot"
        assert training["corpus_sha256"] and training["questions_sha256"] and training["massive_threshold"] > 0
        assert "train_sae.py" in card["command"]
        for sample in ("dev-text", "prompts"):
            quality = card["quality"][sample]
            assert quality["n_tokens"] >= 200 and quality["dead_tokens"] >= 400 and quality["check"]["n_tokens"] > 0
            assert 0 < quality["l0"] < 256 and quality["ce_clean"] < quality["ce_zero"]
        assert [row["tokens"] for row in card["plateau"]] == [1024]
        cfg = json.loads((folder / "cfg.json").read_text())
        assert cfg["d_sae"] == 256 and cfg["normalize_activations"] == "none"  # scale folded into the weights
        assert cfg["metadata"]["hook_name"] == f"blocks.{layer}.hook_resid_post"


def test_train_sae_refuses_missing_corpus(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "train_sae.py"), "--layer", "2", "--corpus",
                           str(tmp_path / "none.jsonl"), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "not found" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


SHIPPED = shipped_sae_names()
SHIPPED_MODELS = {name.split("/")[0] for name in SHIPPED}


def test_embedded_models_have_shipped_saes():
    """SmolLM2 at ~20/50/75% depth; every default SAE is shipped."""
    from gradsae_nn.core.sae import DEFAULT_SAE_LAYER

    assert {"smollm2-135m-it/L6", "smollm2-135m-it/L15", "smollm2-135m-it/L22"} <= set(SHIPPED)
    assert {f"{model}/L{layer}" for model, layer in DEFAULT_SAE_LAYER.items() if model in SHIPPED_MODELS} <= set(SHIPPED)


CURRENT = [name for name in SHIPPED if name.split("/")[1][1:].isdigit()]


def is_model_default(name: str) -> bool:
    """Whether `name` ("model/L<layer>") is its model's default SAE."""
    from gradsae_nn.core.sae import DEFAULT_SAE_LAYER

    model_name, layer_dir = name.split("/")
    return int(layer_dir[1:]) == DEFAULT_SAE_LAYER.get(model_name)


# "full": both samples and CE recovered; "cut": the prompts sample with the forward cut at the layer (a swapped or
# damaged file moves EV and L0 as surely as CE). The package default's SAE gets the full check; the other models'
# default SAEs get the cut check, and the full one under `extended` (about 2 minutes between them); the rest the cut.
PACKAGE_DEFAULT = [name for name in CURRENT if is_model_default(name) and name.startswith(DEFAULT_MODEL + "/")]
QUALITY_CASES = [(name, "cut") for name in CURRENT if name not in PACKAGE_DEFAULT] + [
    pytest.param(name, "full", marks=[] if name in PACKAGE_DEFAULT else [pytest.mark.extended])
    for name in CURRENT if is_model_default(name)]


@pytest.mark.slow
@pytest.mark.parametrize("name, check", QUALITY_CASES)
def test_shipped_sae_loads_and_keeps_its_quality(name, check, request):
    """Recompute the card's check sample (the first 2,000 tokens of each sample); a broken or swapped weight file
    fails here, and so would a sample on which a single token decides the explained variance."""
    from gradsae_nn.training.quality import CHECK_TOKENS, SAMPLES, evaluate_sae, quality_sample

    model_name, layer_dir = name.split("/")
    from conftest import MODEL_FIXTURES

    model = request.getfixturevalue(MODEL_FIXTURES[model_name])
    layer = int(layer_dir[1:])
    sae = load_sae(name, model, layer)
    assert sae.cfg.d_in == model.d_model and hook_layer(sae) == layer and sae.W_dec.dtype == torch.float32
    card = json.loads((shipped_sae_root() / name / "gradsae_card.json").read_text())
    # The full check: both samples, with CE loss recovered on the experiments' prompts (three full forward
    # passes); the cut one: the prompts only, with the forward cut at the layer, at a fraction of the cost.
    full = check == "full"
    for sample in SAMPLES if full else ("prompts",):
        recorded = card["quality"][sample]["check"]
        sequences = quality_sample(model, sample, CHECK_TOKENS)        # as `measure` chose the check sample
        losses = full and sample == "prompts"
        quality = evaluate_sae(model, sae, layer, sequences, sample, recorded["massive_threshold"], losses=losses)
        # A regression check on recorded aggregates, not a rounding comparison: another CPU moves x by ~1e-4
        # relative (tests/tolerance.py), which moves these statistics over thousands of tokens by < 1e-3, while a
        # swapped or damaged weight file moves EV and CE recovered by > 0.05 and L0 by > 10%.
        assert (quality.n_tokens, quality.n_massive) == (recorded["n_tokens"], recorded["n_massive"])
        assert quality.explained_variance == pytest.approx(recorded["explained_variance"], abs=0.005)
        assert quality.l0 == pytest.approx(recorded["l0"], rel=0.01)
        if losses:
            assert quality.ce_loss_recovered == pytest.approx(recorded["ce_loss_recovered"], abs=0.01)
        # no single token can swing this sample's EV: one massive token moved the old card's EV from 0.589 to
        # 0.963 (test_one_massive_token_swings_an_unguarded_sample). On a 2k-token check sample an ordinary
        # token with a large error moves EV by up to ~0.01 (gemma's dev-text check: 0.0104), so the guard is
        # 0.02, still 18x below the failure it catches.
        assert quality.max_token_influence <= 0.02, (sample, quality.max_token_influence)
        assert card["quality"][sample]["max_token_influence"] <= 0.02


@pytest.mark.slow
def test_one_massive_token_swings_an_unguarded_sample(smollm):
    """The old card's sample (the first dev tokens in 128-token windows, position 0 left out) measured without
    leaving massive tokens out: one token decides EV, and `max_token_influence` shows it."""
    from gradsae_nn.data.squad import group_by_context, load_squad, to_examples
    from gradsae_nn.training.quality import evaluate_sae

    sae = load_sae("smollm2-135m-it/L15-paragraphs", smollm, 15)
    windows, total = [], 0
    for context in group_by_context(to_examples(load_squad())):
        ids = smollm.tokenizer(context, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), 128):
            if total < 4351 and len(ids[start:start + 128]) > 1:
                windows.append(ids[start:start + 128])
                total += len(windows[-1]) - 1
    # EV and the guard need no losses: the forward stops at the layer (test_losses_off_keeps_the_rest)
    unguarded = evaluate_sae(smollm, sae, 15, windows, "old card sample", threshold=float("inf"), losses=False)
    guarded = evaluate_sae(smollm, sae, 15, windows, "old card sample", losses=False)
    assert unguarded.n_massive == 0 and guarded.n_massive >= 1
    assert unguarded.max_token_influence > 0.1 > guarded.max_token_influence
    assert unguarded.explained_variance - guarded.explained_variance > 0.1


@pytest.mark.slow
def test_losses_off_keeps_the_rest(smollm):
    """`losses=False` cuts the forward at the layer: the same reconstruction statistics, CE and KL NaN."""
    import math

    from gradsae_nn.training.quality import evaluate_sae, quality_sample

    sae = load_sae("smollm2-135m-it/L15", smollm, 15)
    sequences = quality_sample(smollm, "prompts", 300)
    full = evaluate_sae(smollm, sae, 15, sequences, "prompts")
    cut = evaluate_sae(smollm, sae, 15, sequences, "prompts", losses=False)
    assert math.isfinite(full.ce_loss_recovered) and math.isfinite(full.kl)
    assert all(math.isnan(v) for v in (cut.ce_clean, cut.ce_sae, cut.ce_zero, cut.ce_loss_recovered, cut.kl))
    assert (cut.n_tokens, cut.n_first, cut.n_massive, cut.massive_threshold) == (
        full.n_tokens, full.n_first, full.n_massive, full.massive_threshold)
    # other batches (no logit budget without losses): residuals differ by rounding only, ~1e-4 relative across
    # kernels (tests/tolerance.py), far below these aggregates' 1e-3
    assert cut.explained_variance == pytest.approx(full.explained_variance, abs=1e-3)
    assert cut.l0 == pytest.approx(full.l0, rel=1e-3)
    assert cut.max_token_influence == pytest.approx(full.max_token_influence, abs=1e-3)


def test_fold_centering_is_exact():
    """An SAE trained on (x − μ)·s, once folded, maps raw x to the same latents and the same reconstruction."""
    import copy

    from conftest import make_sae
    from gradsae_nn.training.train import centering, fold_centering
    from tolerance import dot_bound

    torch.manual_seed(0)
    x = torch.randn(1000, 64) * 20 + torch.randn(64) * 300          # a few large offsets, like massive dims
    mean, scale = centering(x)
    # a mean of 1000 sums of 64 squares, computed twice: within two inner products' rounding of 64·1000 terms
    assert ((x - mean) * scale).pow(2).sum(-1).mean().item() == pytest.approx(64, rel=2 * dot_bound(1.0, 64_000))
    trained = make_sae("standard", d_in=64, d_sae=256, layer=1, active=0.2)
    folded = copy.deepcopy(trained)
    fold_centering(folded, mean, scale)
    h = trained.encode((x - mean) * scale)
    # both encode the same pre-activations in another order of operations: each within an inner product's
    # rounding over d_in terms whose sizes include the offsets μ (ReLU is 1-Lipschitz); folding rounds W and b
    offsets = ((x.abs() + mean.abs()) * scale + trained.b_dec.abs()) @ trained.W_enc.abs() + trained.b_enc.abs()
    h_bound = 2 * dot_bound(offsets, 64 + 3)
    assert ((folded.encode(x) - h).abs() <= h_bound).all()
    # decode: the latents' difference through |W_dec| / s, two decodes over d_sae terms, and adding μ back
    decoded = folded.decode(folded.encode(x))
    x_bound = (h_bound @ trained.W_dec.abs() + 2 * dot_bound(h.abs() @ trained.W_dec.abs() + trained.b_dec.abs(), 256 + 1)
               ) / scale + 2 * dot_bound(mean.abs() + decoded.abs(), 2)
    assert ((decoded - (trained.decode(h) / scale + mean)).abs() <= x_bound).all()
    assert ((decoded - (trained.decode(h) / scale)).abs() > 10 * x_bound).any()    # forgetting μ is caught


@pytest.mark.slow
def test_dead_fraction_agrees_with_full_evaluation(smollm):
    """The cheap dead-latent count (forward cut at the layer) sees the same tokens as the full evaluation."""
    from gradsae_nn.training.quality import dead_fraction, evaluate_sae, massive_threshold, quality_sample
    from tolerance import dot_bound, network_rtol

    sae = load_sae("smollm2-135m-it/L15", smollm, 15)
    sequences = quality_sample(smollm, "dev-text", 300)
    threshold = massive_threshold(smollm, 15, sequences)
    full = evaluate_sae(smollm, sae, 15, sequences, "dev-text", threshold)
    assert 0.05 < full.dead_fraction < 0.95          # a sample small enough for the count to mean something
    cheap, counted = dead_fraction(smollm, sae, 15, sequences, threshold)
    assert counted == full.n_tokens
    # The two see the same tokens in other batches, so x differs by up to two forward passes' rounding; a latent
    # can count differently only if its largest pre-activation on the sample lies within what that moves it by.
    from gradsae_nn.training.quality import residual_states

    x = residual_states(smollm, 15, sequences, threshold)
    centred = x - sae.b_dec
    pre = centred @ sae.W_enc + sae.b_enc
    moved = network_rtol(smollm.config) * (x.abs() @ sae.W_enc.abs()) \
        + 2 * dot_bound(centred.abs() @ sae.W_enc.abs() + sae.b_enc.abs(), 577)
    borderline = int(((pre.abs() <= moved).any(0) & ~(pre > moved).any(0)).sum())
    assert abs(cheap - full.dead_fraction) * sae.cfg.d_sae <= borderline, borderline


def test_shared_prefix_collection_equals_whole_sequences(tmp_path):
    """Prompts that skip the same head (instruction and demonstrations) run only their tails on one KV cache of
    it; their activations equal those of whole left-padded sequences, up to two passes' rounding and fp16."""
    from conftest import save_tiny_llama
    from gradsae_nn.models import load_model
    from gradsae_nn.training.corpus import TrainSequence
    from gradsae_nn.training.collect import collect_activations
    from tolerance import network_rtol, unit_roundoff

    model = load_model(str(save_tiny_llama(tmp_path)), device="cpu")
    generator = torch.Generator().manual_seed(0)
    head = tuple(torch.randint(5, 200, (23,), generator=generator).tolist())
    sequences = [TrainSequence(head + tuple(torch.randint(5, 200, (n,), generator=generator).tolist()), len(head))
                 for n in (4, 11, 7, 15, 9, 2)]
    n_tokens = sum(len(s.ids) - s.start for s in sequences)
    kwargs = dict(layers=[0, 1], n_tokens=n_tokens, thresholds={0: 1e9, 1: 1e9}, batch_size=4)
    shared = collect_activations(model, sequences=iter(sequences), share_prefix=True, **kwargs)
    whole = collect_activations(model, sequences=iter(sequences), share_prefix=False, **kwargs)
    for layer in (0, 1):
        a, b = shared[layer].float(), whole[layer].float()
        scale = b.abs().amax(dim=1, keepdim=True)
        bound = 2 * network_rtol(model.config) * scale + 2 * unit_roundoff(torch.float16) * b.abs()
        assert ((a - b).abs() <= bound).all(), float(((a - b).abs() - bound).max())
        assert (b.abs().sum(1) > 0).all()                                  # every row was filled


def test_an_interrupted_collection_resumes_from_its_shards(tmp_path):
    """Collection checkpoints shards; one stopped mid-way (KeyboardInterrupt from the corpus) resumes to the
    same activations as an uninterrupted run, without recomputing what the shards hold."""
    from conftest import save_tiny_llama
    from gradsae_nn.models import load_model
    from gradsae_nn.training.collect import collect_activations
    from gradsae_nn.training.corpus import TrainSequence

    model = load_model(str(save_tiny_llama(tmp_path)), device="cpu")
    generator = torch.Generator().manual_seed(1)
    sequences = [TrainSequence(tuple(torch.randint(5, 200, (int(n),), generator=generator).tolist()))
                 for n in torch.randint(6, 30, (40,), generator=generator)]
    kwargs = dict(layers=[1], n_tokens=500, thresholds={1: 1e9}, batch_size=4, shard_tokens=100)
    whole = collect_activations(model, sequences=iter(sequences), **kwargs)

    served = []

    def interrupted():
        for seq in sequences:
            if len(served) == 26:
                raise KeyboardInterrupt
            served.append(seq)
            yield seq

    with pytest.raises(KeyboardInterrupt):
        collect_activations(model, sequences=interrupted(), shards=tmp_path / "shards", **kwargs)
    progress = json.loads((tmp_path / "shards" / "progress.json").read_text())
    assert progress and progress[-1]["filled"]["1"] >= 100                   # something was checkpointed
    resumed = collect_activations(model, sequences=iter(sequences), shards=tmp_path / "shards", **kwargs)
    assert torch.equal(resumed[1], whole[1])


def test_an_interrupt_mid_batch_checkpoints_every_whole_batch_before_it(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM under `cli.run`) between two shards writes a last shard of the batches finished
    before it, not the batch it cut short (whose first group is already stored); the resumed collection
    equals an uninterrupted one and does not recompute those batches."""
    from conftest import save_tiny_llama
    from gradsae_nn.models import load_model
    from gradsae_nn.training import collect
    from gradsae_nn.training.corpus import TrainSequence

    model = load_model(str(save_tiny_llama(tmp_path)), device="cpu")
    generator = torch.Generator().manual_seed(2)
    heads = [tuple(torch.randint(5, 200, (9,), generator=generator).tolist()) for _ in range(2)]
    sequences = [TrainSequence(heads[i % 2] + tuple(torch.randint(5, 200, (int(n),), generator=generator).tolist()),
                               len(heads[i % 2])) for i, n in enumerate(torch.randint(3, 12, (24,), generator=generator))]
    n_tokens = sum(len(s.ids) - s.start for s in sequences)
    kwargs = dict(layers=[1], n_tokens=n_tokens, thresholds={1: 1e9}, batch_size=4, shard_tokens=10**9)
    whole = collect.collect_activations(model, sequences=iter(sequences), **kwargs)

    tail_pass, calls = collect._tail_pass, []

    def cut(*args, **kw):                        # each batch of 4 has both heads: two passes per batch
        calls.append(1)
        if len(calls) == 8:                      # the second pass of the 4th batch: its first group is stored
            raise KeyboardInterrupt
        return tail_pass(*args, **kw)

    monkeypatch.setattr(collect, "_tail_pass", cut)
    with pytest.raises(KeyboardInterrupt):
        collect.collect_activations(model, sequences=iter(sequences), shards=tmp_path / "shards", **kwargs)
    (entry,) = json.loads((tmp_path / "shards" / "progress.json").read_text())
    assert entry == {"sequences": 12, "filled": {"1": sum(len(s.ids) - s.start for s in sequences[:12])}}

    calls.clear()
    monkeypatch.setattr(collect, "_tail_pass", lambda *a, **kw: (calls.append(1), tail_pass(*a, **kw))[1])
    resumed = collect.collect_activations(model, sequences=iter(sequences), shards=tmp_path / "shards", **kwargs)
    assert len(calls) == 6                       # batches 4-6 only
    assert torch.equal(resumed[1], whole[1])


def test_bfloat16_collection_is_bfloat16_and_close_to_float32(tmp_path):
    """`--collect-dtype bfloat16` collects with a bfloat16 copy of the model: its activations differ from the
    float32 model's (so the copy really ran in bfloat16) by no more than a bfloat16 forward's rounding."""
    from conftest import save_tiny_llama
    from gradsae_nn.models import load_model
    from gradsae_nn.training.config import TrainSAEConfig
    from gradsae_nn.training.run import activations
    from tolerance import network_rtol, unit_roundoff

    folder = str(save_tiny_llama(tmp_path / "model"))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"context": f"Paragraph {i}: the bridges of Paris number {i * 3}, and "
                                            f"its museums {i * 7}."}) for i in range(40)))
    model = load_model(folder, device="cpu")
    acts = {}
    for dtype in ("float32", "bfloat16"):
        config = TrainSAEConfig(model=folder, layer=(1,), corpus=str(corpus), out=str(tmp_path), tokens=300,
                                collect_dtype=dtype)
        acts[dtype] = activations(config, model, {1: 1e9}, ["digest"])[1].float()
    a, b = acts["bfloat16"], acts["float32"]
    assert not torch.equal(a, b)
    bound = (2 * network_rtol(model.config, torch.bfloat16) * b.abs().amax(dim=1, keepdim=True)
             + 2 * unit_roundoff(torch.float16) * b.abs())
    assert ((a - b).abs() <= bound).all(), float(((a - b).abs() - bound).max())
    assert next(model.lm._module.parameters()).dtype == torch.float32      # the caller's model stays float32


def test_bf16_collection_note_follows_the_cpu_flags():
    from gradsae_nn.training.run import bf16_cpu_note

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert "--collect-dtype float32" in bf16_cpu_note(avx2)
    assert bf16_cpu_note(avx2.replace("avx2 fma", "avx2 avx512f avx512_bf16 fma")) is None
    assert bf16_cpu_note(avx2.replace("avx2 fma", "avx2 amx_bf16 amx_tile")) is None
    assert bf16_cpu_note("processor\t: 0\n") is None                      # no flags line (not x86): say nothing
