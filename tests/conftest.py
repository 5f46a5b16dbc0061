from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))  # shared test helpers (blockcmp, oracle)

# Deterministic property tests: the same examples on every run and machine.
settings.register_profile(
    "ggquant", derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ggquant")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
