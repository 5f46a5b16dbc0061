from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))  # shared test helpers: helpers/, oracle/, llama_oracle

from helpers import ggml as _ggml  # noqa: E402  (needs the path above)

# Deterministic property tests: the same examples on every run and machine.
settings.register_profile(
    "ggquant", derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ggquant")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def ggml() -> _ggml.GGML:
    """ggml's own quantizers (tests/helpers/ggml.py); the test skips, saying what to install, without them."""
    oracle, why = _ggml.load()
    if oracle is None:
        pytest.skip(why)
    return oracle
