"""The scoring layout's answer-only logits: which columns are kept and that targets read the right ones.

Scores against plain autograd with every column's logits are checked in test_core
(`test_scores_equal_plain_autograd`, `test_batch_equals_single_and_xgrad_equals_trace`).
"""

import pytest
import torch

from gradsae_nn.core.targets import MIN_LOGIT_COLUMNS, ScoringInput, build_batch, target_values
from gradsae_nn.modes import Target, choices


def batch_of(prompt_lens, answer_lens):
    return build_batch([ScoringInput(tuple(range(1, p + 1)), tuple(range(100, 100 + a)))
                        for p, a in zip(prompt_lens, answer_lens)], pad_id=0)


def test_logit_columns_cover_the_answer_with_a_floor_and_a_cap():
    assert batch_of([40, 30], [3, 1]).logit_columns == MIN_LOGIT_COLUMNS           # floor
    assert batch_of([40, 30], [25, 2]).logit_columns == 26                        # answer + the last column
    assert batch_of([5], [2]).logit_columns == 7                                  # the whole row


@pytest.mark.parametrize("target", choices(Target))
@pytest.mark.parametrize("answer_lens", [[1, 3], [20, 4]])
def test_target_from_kept_columns_equals_target_from_all(target, answer_lens):
    batch = batch_of([30, 22], answer_lens)
    logits = torch.randn(2, batch.input_ids.shape[1], 200, generator=torch.Generator().manual_seed(0))
    expected = target_values(logits, batch, target)
    assert torch.equal(target_values(logits[:, -batch.logit_columns:], batch, target), expected)
    assert not torch.equal(target_values(logits.roll(1, dims=1), batch, target), expected)  # off by one is caught


def test_too_few_columns_is_an_error():
    batch = batch_of([30], [20])
    with pytest.raises(ValueError, match="the answer needs the last 21"):
        target_values(torch.zeros(1, 5, 200), batch, "answer-logprob")


@pytest.mark.slow
def test_model_computes_only_the_kept_columns(smollm):
    from tolerance import dot_bound

    batch = batch_of([12, 30], [2, 1])
    with torch.no_grad(), smollm.lm.trace(batch.model_inputs("cpu")):
        kept = smollm.lm.lm_head.output.save()
    with torch.no_grad(), smollm.lm.trace(batch.model_inputs("cpu", all_logits=True)):
        hidden = smollm.lm.lm_head.input.save()
        full = smollm.lm.lm_head.output.save()
    assert kept.shape[1] == batch.logit_columns < full.shape[1] == batch.input_ids.shape[1]
    # the layers below run on the same shapes; only the LM head's matmul (inner products over d_model) sees
    # fewer rows, which may change its blocking: each logit twice within its inner product's rounding bound
    scale = hidden[:, -batch.logit_columns:].abs() @ smollm.lm.lm_head.weight.abs().T
    bound = 2 * dot_bound(scale, smollm.d_model)
    assert ((kept - full[:, -batch.logit_columns:]).abs() <= bound).all()
    assert ((kept - full[:, -batch.logit_columns - 1:-1]).abs() > 10 * bound).any()  # off by one column is caught
