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


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict[str, object]]:
    """A 2-layer Llama checkpoint (hidden 256, vocabulary 384, tests/hf_models.py) with ``text.txt`` and its
    F32, Q8_0, Q4_0 and Q2_K conversions: ``(model_dir, {preset: gguf path})``. Treat both as read-only."""
    pytest.importorskip("transformers")
    import ggquant
    import hf_models

    d = tmp_path_factory.mktemp("tiny_llama")
    hf_models.build("llama", d, hidden=256, layers=2, vocab=384)
    (d / "text.txt").write_text(" ".join(hf_models.CORPUS * 3) + "\n")
    files = {p: ggquant.convert(d, d / f"{p}.gguf", p, quiet=True).path for p in ("F32", "Q8_0", "Q4_0", "Q2_K")}
    return d, files
