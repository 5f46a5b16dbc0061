"""IQ4_NL and IQ4_XS: bit-exact against ggml's ``ggml_quantize_chunk`` with and without an imatrix.

The oracle is ggml's own C code (tests/oracle/ggml_oracle.py, ctypes on libggml-base). Without it
the oracle tests skip; the gguf-py and round-trip tests still run (SIMD levels and thread counts:
tests/test_invariance.py).
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GT
from helpers.compare import assert_blocks_equal, assert_floats_bitwise_equal
from helpers.data import imatrices
from hypothesis import given
from hypothesis import strategies as st

import ggquant

TYPES = ["iq4_nl", "iq4_xs"]
LEVELS = ggquant.config()["simd_available"]


def cases(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Named inputs of row length n that reach the branches of the IQ4 search."""
    randn = rng.standard_normal((5, n), dtype=np.float32)
    randn[2] = 0.0  # a zero row
    outlier = rng.standard_normal((3, n), dtype=np.float32)
    outlier[0, 17] = 1e4  # one huge value
    outlier[1, n - 1] = -3e4
    outlier[2, 100] = 1e30  # squares overflow to Inf inside the search
    const = np.stack([np.full(n, 0.37, np.float32), np.full(n, -2.5, np.float32)])
    tiny = (rng.standard_normal((2, n)) * 1e-30).astype(np.float32)  # scales underflow fp16
    subnormal = (rng.standard_normal((1, n)) * 1e-40).astype(np.float32)  # below the all-zero threshold
    scaled = (rng.standard_normal((3, n)) * np.exp(rng.uniform(-12, 12, (3, 1)))).astype(np.float32)
    # half-integers with the block maximum at -127 or 113: first-guess codes fall on exact ties
    ties = (rng.integers(-254, 227, (2, n)) / 2).astype(np.float32)
    ties[0, ::32] = -127
    ties[1, ::32] = 113
    sparse = np.where(rng.random((2, n)) < 0.9, 0, rng.standard_normal((2, n))).astype(np.float32)
    # block scales far apart within a super-block: 6-bit IQ4_XS scales clamp and round to zero
    blockwise = (rng.standard_normal((2, n)) * np.exp(rng.uniform(-10, 10, (2, n // 32))).repeat(32, 1)).astype(
        np.float32
    )
    return {k: v for k, v in locals().items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("n", [256, 768, 4096, 14336])
def test_quantize_matches_ggml(t, n, ggml):
    rng = np.random.default_rng(n)
    info = ggquant.type_info(t)
    xs = cases(rng, n) if n <= 4096 else {"randn": rng.standard_normal((2, n), dtype=np.float32)}
    for wname, w in imatrices(rng, n, samples=32, mean=True).items():
        for case, x in xs.items():
            ref = ggml.quantize(t, x, w)
            for level in LEVELS:
                ours = ggquant.quantize(x, t, imatrix=w, simd=level)
                assert_blocks_equal(ours, ref, info.type_size, f"{t} n={n} {case} imatrix={wname} simd={level}")


@pytest.mark.parametrize("t", TYPES)
def test_dequantize_matches_ggml_and_gguf_py(t, rng, ggml):
    info = ggquant.type_info(t)
    x = rng.standard_normal((8, 512), dtype=np.float32)
    q = ggml.quantize(t, x, None)
    ours = ggquant.dequantize(q, t)
    assert_floats_bitwise_equal(ours, ggml.dequantize(t, q, 512), info.block_size, f"{t} vs ggml")
    assert_floats_bitwise_equal(ours, gguf.quants.dequantize(q, GT[t.upper()]), info.block_size, f"{t} vs gguf-py")


@pytest.mark.parametrize("t", TYPES)
def test_imatrix_must_fit_the_row(t):
    x = np.ones((2, 256), np.float32)
    with pytest.raises(ggquant.ShapeError, match="imatrix"):
        ggquant.quantize(x, t, imatrix=np.ones(255, np.float32))
    with pytest.raises(ggquant.GGQuantError, match="negative"):
        ggquant.quantize(x, t, imatrix=-np.ones(256, np.float32))
    with pytest.raises(ggquant.ShapeError):
        ggquant.quantize(np.ones((2, 32 * 9), np.float32), "iq4_xs")  # not a multiple of 256


# test-quantize-fns: rms error sqrt(sum d^2)/n of 0.1 + 2 cos(i + offset) must stay below 0.002
@given(t=st.sampled_from(TYPES), offset=st.floats(0, 1000, allow_nan=False), weighted=st.booleans())
def test_round_trip_error_like_test_quantize_fns(t, offset, weighted):
    n = 4096
    x = (0.1 + 2 * np.cos(np.arange(n, dtype=np.float32) + np.float32(offset))).astype(np.float32)[None]
    w = (1 + np.sin(np.arange(n, dtype=np.float32)) ** 2).astype(np.float32) if weighted else None
    back = ggquant.dequantize(ggquant.quantize(x, t, imatrix=w), t)
    err = float(np.sqrt(np.sum((back.astype(np.float64) - x) ** 2)) / n)
    assert err < 0.002, f"{t}: rms error {err}"


@given(t=st.sampled_from(TYPES), rows=st.integers(1, 3), blocks=st.integers(1, 3), weighted=st.booleans())
def test_zeros_stay_zeros(t, rows, blocks, weighted):
    x = np.zeros((rows, 256 * blocks), np.float32)
    w = np.ones(x.shape[1], np.float32) if weighted else None
    assert not np.any(ggquant.dequantize(ggquant.quantize(x, t, imatrix=w), t))


@pytest.mark.parametrize("t", TYPES)
def test_nonfinite_rows_match_ggml(t, rng, ggml):
    """With allow_nonfinite=True, NaN/Inf rows give ggml's bytes too (its comparisons, NaN rules)."""
    x = rng.standard_normal((6, 512), dtype=np.float32)
    x[0, 3] = np.nan
    x[1] = np.inf
    x[2, 100] = -np.inf
    x[3, ::2] = np.nan
    x[4] = 3e38
    w = rng.random(512).astype(np.float32)
    for imatrix in (None, w):
        for level in LEVELS:
            ours = ggquant.quantize(x, t, imatrix=imatrix, allow_nonfinite=True, simd=level)
            assert_blocks_equal(ours, ggml.quantize(t, x, imatrix), ggquant.type_info(t).type_size, f"{t} {level}")
