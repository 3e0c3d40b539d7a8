"""The scoring layout's answer-only logits (`logits_to_keep`) give the same targets and gradients as full logits."""

import pytest
import torch

from gradsae_nn.targets import TARGETS, ScoringInput, build_batch, target_values


@pytest.fixture(scope="module")
def hf_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    return LlamaForCausalLM(config).eval().requires_grad_(False)


@pytest.mark.parametrize("target", TARGETS)
def test_answer_only_logits_match_full_logits(hf_model, target):
    examples = [ScoringInput((5, 6, 7, 8, 9, 10), (11, 12, 13)), ScoringInput((20, 21, 22), (23,))]
    batch = build_batch(examples, pad_id=0)
    results = []
    for all_logits in (True, False):
        inputs = batch.model_inputs("cpu", all_logits=all_logits)
        embeds = hf_model.model.embed_tokens(inputs.pop("input_ids")).requires_grad_(True)
        logits = hf_model(inputs_embeds=embeds, **inputs).logits
        assert logits.shape[1] == (batch.input_ids.shape[1] if all_logits else 3)
        values = target_values(logits, batch, target)
        (grad,) = torch.autograd.grad(values.sum(), embeds)
        results.append((values, grad))
    (full, grad_full), (kept, grad_kept) = results
    torch.testing.assert_close(kept, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_kept, grad_full, rtol=1e-4, atol=1e-7)


def test_target_values_refuses_other_widths(hf_model):
    batch = build_batch([ScoringInput((5, 6, 7), (8, 9))], pad_id=0)
    with pytest.raises(ValueError, match="columns"):
        target_values(torch.zeros(1, 3, 97), batch, "answer-logprob")
