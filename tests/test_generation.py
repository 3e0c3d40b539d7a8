"""Batched left-padded greedy generation equals unbatched; padding and answer extraction."""

import pytest
import torch

from gradsae_nn.generation import extract_answer, greedy_generate, pad_left
from gradsae_nn.prompts import get_template, prompt_ids


def test_pad_left():
    ids, mask = pad_left([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert ids.dtype == mask.dtype == torch.long


@pytest.mark.parametrize("raw, answer", [
    (" Denver Broncos\nQuestion: next", "Denver Broncos"),
    ("\n\n  Santa Clara  \n", "Santa Clara"),
    ("", ""),
])
def test_extract_answer_takes_first_nonempty_line(raw, answer):
    assert extract_answer(raw) == answer


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["smollm", "gemma"])
def test_batched_equals_unbatched(fixture, request, dev_examples):
    model = request.getfixturevalue(fixture)
    template = get_template(None, model)
    # questions of different lengths so that rows really get different amounts of padding
    examples = [dev_examples[i] for i in (0, 7, 100, 2000, 5000, 9000)]
    prompts = [prompt_ids(model, template, ex) for ex in examples]
    assert len({len(p) for p in prompts}) == len(prompts)
    batched = greedy_generate(model, prompts, max_new_tokens=12)
    single = [greedy_generate(model, [p], max_new_tokens=12)[0] for p in prompts]
    assert batched == single
    assert all(len(row) > 0 for row in batched)
