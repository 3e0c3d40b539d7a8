"""The SQuAD v1.1 metric on hand-made cases whose answers follow from the official definition."""

import pytest

from gradsae_nn.data.metrics import exact_match, f1, normalize_answer, qa_score


@pytest.mark.parametrize("raw, normalised", [
    ("The Cat!", "cat"),                      # lowercase, punctuation, article
    ("  an   apple, a pear  ", "apple pear"),  # articles anywhere, whitespace collapsed
    ("theater", "theater"),                   # 'the' inside a word is kept
    ("Denver Broncos.", "denver broncos"),
    ("U.S.A.", "usa"),                        # punctuation removed, not replaced by spaces
    ("16,000 rpm", "16000 rpm"),
    ("", ""),
])
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_exact_match_ignores_case_articles_and_punctuation():
    assert exact_match("The Denver Broncos", "denver broncos!") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0


def test_f1_partial_overlap():
    # "big red dog" vs "red dog": overlap 2, precision 2/3, recall 1 -> F1 = 0.8
    assert f1("the big red dog", "red dog") == pytest.approx(0.8)
    # tokens count with multiplicity: one common "paris" of three predicted -> P 1/3, R 1 -> F1 0.5
    assert f1("paris paris london", "paris") == pytest.approx(0.5)


def test_f1_no_overlap_and_empty():
    assert f1("Santa Clara", "Levi's Stadium") == 0.0
    assert f1("", "anything") == 0.0
    assert f1("the", "a") == 0.0  # both normalise to empty: no common tokens


def test_score_takes_max_over_golds():
    s = qa_score("Levi's Stadium in Santa Clara", ["Santa Clara, California", "Levi's Stadium"])
    assert s.em == 0.0
    # vs "Levi's Stadium": pred tokens [levis, stadium, in, santa, clara] (5), overlap 2 -> P .4, R 1
    assert s.f1 == pytest.approx(2 * 0.4 * 1.0 / 1.4)
    assert qa_score("Levi's Stadium", ["Santa Clara", "levis stadium"]).em == 1.0


def test_score_needs_a_gold():
    with pytest.raises(ValueError):
        qa_score("x", [])
