"""Shared fixtures: the real embedded models, loaded once per test session."""

import pytest


@pytest.fixture(scope="session")
def smollm():
    from gradsae_nn.models import load_model

    return load_model("smollm2-135m-it", device="cpu")


@pytest.fixture(scope="session")
def gemma():
    from gradsae_nn.models import load_model

    return load_model("gemma3-270m", device="cpu")


@pytest.fixture(scope="session")
def dev_examples():
    from gradsae_nn.squad import load_squad, to_examples

    return to_examples(load_squad())
