"""TopK/BottomK selection: positives only, deterministic ties, '50%', truncation without padding, bad K."""

import pytest
import torch

from gradsae_nn.errors import UsageError
from gradsae_nn.core.selection import parse_k, resolve_k, select


def test_top_and_bottom_take_only_positive_scores():
    scores = torch.tensor([0.0, 3.0, -1.0, 1.0, 2.0, 0.0, 0.5])
    top = select(scores, 2, "top", n_active_last=4)
    assert top.latents == (1, 4) and top.scores == (3.0, 2.0) and not top.truncated
    bottom = select(scores, 2, "bottom", n_active_last=4)
    assert bottom.latents == (6, 3)           # smallest positive first; zeros and negatives never chosen


def test_ties_go_to_lower_latent_id():
    scores = torch.tensor([1.0, 2.0, 2.0, 1.0, 2.0])
    assert select(scores, 2, "top", 5).latents == (1, 2)
    assert select(scores, 3, "bottom", 5).latents == (0, 3, 1)


def test_k_larger_than_positive_set_is_truncated_not_padded():
    scores = torch.tensor([0.0, 0.2, 0.0, 0.1])
    sel = select(scores, 10, "top", n_active_last=2)
    assert sel.latents == (1, 3) and sel.k_wanted == 10 and sel.truncated


def test_percentage_is_of_latents_active_at_last_token():
    scores = torch.arange(1, 101, dtype=torch.float32)
    sel = select(scores, "50%", "top", n_active_last=37)
    assert sel.k_wanted == 18 and len(sel.latents) == 18 and sel.latents[0] == 99
    assert resolve_k("50%", 1) == 1            # at least one latent
    assert resolve_k(7, 1000) == 7


@pytest.mark.parametrize("bad", [0, -3, "0", "-3", "0%", "150%", "abc", "5 0%", "%", "1.5"])
def test_bad_k(bad):
    with pytest.raises(UsageError):
        parse_k(bad)


def test_empty_selection_is_an_error():
    with pytest.raises(UsageError, match="empty selection"):
        select(torch.zeros(5), 3, "top", 0)
