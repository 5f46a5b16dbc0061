"""TQ1_0, TQ2_0, MXFP4 (gguf-py quantizes these too), NVFP4, Q1_0 and Q2_0: quantization bit-exact
against gguf-py and ggml's ``ggml_quantize_chunk``."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GT
from helpers.compare import assert_blocks_equal
from hypothesis import given
from hypothesis import strategies as st

import ggquant

GGUF_PY_QUANT = ["tq1_0", "tq2_0", "mxfp4"]
TYPES = [*GGUF_PY_QUANT, "nvfp4", "q1_0", "q2_0"]


def cases(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    randn = rng.standard_normal((4, n), dtype=np.float32)
    randn[1] = 0.0  # a zero row
    outlier = rng.standard_normal((2, n), dtype=np.float32)
    outlier[0, 5] = 1e4
    outlier[1, 77] = -1e30
    const = np.full((2, n), -0.37, np.float32)
    ternary = rng.integers(-1, 2, (2, n)).astype(np.float32) * 0.5  # exact ternary weights
    halves = (rng.integers(-4, 5, (2, n)) * 0.5).astype(np.float32)  # rounding ties
    tiny = (rng.standard_normal((2, n)) * 1e-30).astype(np.float32)
    subnormal = (rng.standard_normal((1, n)) * 1e-40).astype(np.float32)
    scaled = (rng.standard_normal((3, n)) * np.exp(rng.uniform(-20, 20, (3, 1)))).astype(np.float32)
    return {k: v for k, v in locals().items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("t", GGUF_PY_QUANT)
def test_quantize_matches_gguf_py(t, rng):
    info = ggquant.type_info(t)
    for case, x in cases(rng, 1024).items():
        with np.errstate(all="ignore"):
            ref = np.asarray(gguf.quants.quantize(x, GT[t.upper()])).view(np.uint8).reshape(x.shape[0], -1)
        assert_blocks_equal(ggquant.quantize(x, t), ref, info.type_size, f"{t} {case}")


@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("n", [256, 4096])
def test_quantize_matches_ggml(t, n, ggml):
    rng = np.random.default_rng(n)
    info = ggquant.type_info(t)
    w = rng.random(n).astype(np.float32)  # ignored by these types, as by ggml
    for case, x in cases(rng, n).items():
        for imatrix in (None, w):
            ref = ggml.quantize(t, x, imatrix)
            ours = ggquant.quantize(x, t, imatrix=imatrix)
            assert_blocks_equal(ours, ref, info.type_size, f"{t} n={n} {case} imatrix={imatrix is not None}")


# test-quantize-fns limits on 0.1 + 2 cos(i + offset): rms error sqrt(sum d^2)/n
LIMITS = {"tq1_0": 0.01, "tq2_0": 0.01, "q2_0": 0.01, "q1_0": 0.025, "nvfp4": 0.003, "mxfp4": 0.002}


@given(t=st.sampled_from(TYPES), offset=st.floats(0, 1000, allow_nan=False))
def test_round_trip_error_like_test_quantize_fns(t, offset):
    n = 4096
    x = (0.1 + 2 * np.cos(np.arange(n, dtype=np.float32) + np.float32(offset))).astype(np.float32)[None]
    back = ggquant.dequantize(ggquant.quantize(x, t), t)
    err = float(np.sqrt(np.sum((back.astype(np.float64) - x) ** 2)) / n)
    assert err < LIMITS[t], f"{t}: rms error {err}"


@given(t=st.sampled_from(TYPES), rows=st.integers(1, 3))
def test_zeros_stay_zeros(t, rows):
    x = np.zeros((rows, 256), np.float32)
    assert not np.any(ggquant.dequantize(ggquant.quantize(x, t), t))  # Q1_0: +-d with d = mean |x| = 0


def nonfinite_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((6, n), dtype=np.float32)
    x[0, 3] = np.nan
    x[1] = np.inf
    x[2, 100] = -np.inf
    x[3, ::2] = np.nan
    x[4, 40] = 3e38
    x[5] = -3e38
    return x


@pytest.mark.parametrize("t", TYPES)
def test_nonfinite_rows_match_ggml(t, rng, ggml):
    """With allow_nonfinite=True, NaN/Inf rows give ggml's bytes too (its comparisons, NaN rules)."""
    x = nonfinite_rows(rng, 512)
    ours = ggquant.quantize(x, t, allow_nonfinite=True)
    assert_blocks_equal(ours, ggml.quantize(t, x, None), ggquant.type_info(t).type_size, f"{t} non-finite rows")
