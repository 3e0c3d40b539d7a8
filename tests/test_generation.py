"""Batched left-padded greedy generation equals unbatched; padding and answer extraction."""

import pytest
import torch

from gradsae_nn.core.generation import common_prefix_len, extract_answer, greedy_generate, pad_left, prefix_layout
from gradsae_nn.data.prompts import get_template, prompt_ids
from reference import reference_next_logits
from tolerance import assert_same_greedy, top2_gap


def test_pad_left():
    ids, mask = pad_left([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert ids.dtype == mask.dtype == torch.long


def test_prefix_layout_puts_pads_between_prefix_and_suffix():
    prompts = [[1, 2, 3, 4, 5], [1, 2, 3, 9], [1, 2, 3, 4]]
    assert common_prefix_len(prompts) == 3
    assert common_prefix_len([[1, 2], [1, 2]]) == 1  # every row keeps a token of its own
    ids, mask = prefix_layout(prompts, 3, pad=0)
    assert ids.tolist() == [[1, 2, 3, 4, 5], [1, 2, 3, 0, 9], [1, 2, 3, 0, 4]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 1], [1, 1, 1, 0, 1]]
    assert prefix_layout(prompts, 0, pad=0)[0].tolist() == pad_left(prompts, 0)[0].tolist()


@pytest.mark.parametrize("raw, answer", [
    (" Denver Broncos\nQuestion: next", "Denver Broncos"),
    ("\n\n  Santa Clara  \n", "Santa Clara"),
    ("", ""),
])
def test_extract_answer_takes_first_nonempty_line(raw, answer):
    assert extract_answer(raw) == answer


# gemma-3's sliding window and another tokenizer: the same mechanism again, ~1 min, so `extended` only
@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["smollm", pytest.param("gemma", marks=pytest.mark.extended)])
def test_batched_equals_unbatched(fixture, request, dev_examples):
    model = request.getfixturevalue(fixture)
    template = get_template(None, model)
    # questions of different lengths so that rows really get different amounts of padding
    # 2121 is longer than gemma-3's 512-token sliding window: a batch holding it shares no prefix on gemma
    examples = [dev_examples[i] for i in (0, 7, 100, 2000, 2121, 5000, 9000)]
    prompts = [prompt_ids(model, template, ex) for ex in examples]
    assert len({len(p) for p in prompts}) == len(prompts)
    assert common_prefix_len(prompts) > 150  # the demonstrations
    single = [greedy_generate(model, [p], max_new_tokens=12)[0] for p in prompts]
    batched = greedy_generate(model, prompts, max_new_tokens=12)
    unshared = greedy_generate(model, prompts, max_new_tokens=12, share_prefix=False)
    short = [i for i, p in enumerate(prompts) if len(p) < 500]  # every model shares the prefix here
    short_batch = dict(zip(short, greedy_generate(model, [prompts[i] for i in short], max_new_tokens=12)))
    for i, prompt in enumerate(prompts):
        def gap_at(step, prompt=prompt, row=single[i]):
            return top2_gap(reference_next_logits(model.lm._module, prompt, row[:step]))

        # equal tokens, or parting only at a near-tie (tests/tolerance.py)
        for other in (batched[i], unshared[i], short_batch.get(i, single[i])):
            assert_same_greedy(other, single[i], gap_at, model.config, what=f"row {i}")
    assert all(len(row) > 0 for row in batched)


@pytest.mark.parametrize("text, answer", [
    ("Result = [[ Denver Broncos ]]", "Denver Broncos"),
    ("Result = [[Santa Clara, California]]\nBecause ...", "Santa Clara, California"),
    ("The answer is Paris.", "The answer is Paris."),            # no brackets: the whole completion
    ("Result = [ 1867 ]", "1867"),
    ("Result = [[ a ]] or [[ b ]]", "a"),                        # the first match
])
def test_bracket_extractor_is_the_authors(text, answer):
    from gradsae_nn.core.generation import extract_answer

    from reference import authors_extract

    assert extract_answer(text, "brackets") == answer == authors_extract(text)
