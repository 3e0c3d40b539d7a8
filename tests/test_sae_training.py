"""SAE training end to end (tiny): activations → SAELens SAETrainer → folded inference SAE → card."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch


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
