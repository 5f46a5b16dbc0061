"""K-quants (Q2_K..Q6_K) and the weighted (imatrix) legacy quantizers: bit-exact against ggml.

The oracle is ggml's own C code (``ggml_quantize_chunk`` and the type's ``to_float``), loaded
through ctypes by tests/oracle/ggml_oracle.py. Dequantization is also checked against gguf-py.
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

KTYPES = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]
WEIGHTED_LEGACY = ["q4_0", "q4_1", "q5_0", "q5_1"]
ALL_TYPES = KTYPES + WEIGHTED_LEGACY
LEVELS = ggquant.config()["simd_available"]


def cases(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Named inputs of row length n that exercise the reference quantizers' branches."""
    randn = rng.standard_normal((6, n), dtype=np.float32)
    randn[2] = 0.0  # a zero row
    outlier = rng.standard_normal((3, n), dtype=np.float32)
    outlier[0, 17] = 1e4  # one huge value per row
    outlier[1, n - 1] = -3e4
    outlier[2, 100] = 1e30  # scales overflow fp16
    const = np.stack([np.full(n, 0.37, np.float32), np.full(n, -2.5, np.float32), np.full(n, 1e-3, np.float32)])
    tiny = (rng.standard_normal((2, n)) * 1e-30).astype(np.float32)  # scales underflow fp16
    subnormal = (rng.standard_normal((2, n)) * 1e-40).astype(np.float32)  # float32 subnormals
    scaled = (rng.standard_normal((4, n)) * np.exp(rng.uniform(-12, 12, (4, 1)))).astype(np.float32)
    sparse = np.where(rng.random((2, n)) < 0.9, 0, rng.standard_normal((2, n))).astype(np.float32)
    positive = np.abs(rng.standard_normal((2, n))).astype(np.float32) + 1  # all mins are zero
    halves = np.stack([(np.arange(n, dtype=np.float32) - n // 2) * 0.5, np.resize(np.float32([3, -3, 1.5, 0]), n)])  # ties
    return {k: v for k, v in locals().items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("t", ALL_TYPES)
@pytest.mark.parametrize("n", [256, 512])
def test_quantize_matches_ggml(t, n, ggml):
    rng = np.random.default_rng(n)
    info = ggquant.type_info(t)
    for wname, w in imatrices(rng, n).items():
        if w is None and t in WEIGHTED_LEGACY:
            continue  # the unweighted legacy path is covered in test_legacy_quants.py
        for case, x in cases(rng, n).items():
            ref = ggml.quantize(t, x, w)
            for level in LEVELS:
                ours = ggquant.quantize(x, t, imatrix=w, simd=level)
                assert_blocks_equal(ours, ref, info.type_size, f"{t} n={n} {case} imatrix={wname} simd={level}")


@pytest.mark.parametrize("t", ALL_TYPES)
@pytest.mark.parametrize("n", [4096, 14336])
def test_quantize_long_rows_match_ggml(t, n, ggml):
    rng = np.random.default_rng(n + 1)
    info = ggquant.type_info(t)
    x = rng.standard_normal((2, n), dtype=np.float32)
    x[1, ::97] *= 50  # scattered outliers
    w = (rng.standard_normal((16, n)) ** 2).sum(axis=0).astype(np.float32)
    for wname, im in [("none", None), ("sumsq", w)]:
        ref = ggml.quantize(t, x, im)
        for level in LEVELS:
            ours = ggquant.quantize(x, t, imatrix=im, simd=level)
            assert_blocks_equal(ours, ref, info.type_size, f"{t} n={n} imatrix={wname} simd={level}")


@pytest.mark.parametrize("t", KTYPES)
def test_dequantize_matches_gguf_py(t):
    rng = np.random.default_rng(3)
    info = ggquant.type_info(t)
    for case, x in cases(rng, 512).items():
        blocks = ggquant.quantize(x, t, simd="generic")
        with np.errstate(all="ignore"):
            ref = gguf.quants.dequantize(blocks, GT[t.upper()])
        assert_floats_bitwise_equal(ggquant.dequantize(blocks, t), ref, info.block_size, f"{t} {case}")


@pytest.mark.parametrize("t", KTYPES)
def test_dequantize_random_bytes_matches_gguf_py(t):
    """Arbitrary bytes read as blocks (NaN/Inf scales included) decode like gguf-py, bit for bit."""
    rng = np.random.default_rng(11)
    info = ggquant.type_info(t)
    raw = rng.integers(0, 256, (8, 4 * info.type_size), dtype=np.uint8)
    with np.errstate(all="ignore"):
        ref = gguf.quants.dequantize(raw, GT[t.upper()])
    assert_floats_bitwise_equal(ggquant.dequantize(raw, t), ref, info.block_size, f"{t} random bytes")


@pytest.mark.parametrize("t", KTYPES)
def test_dequantize_matches_ggml(t, ggml):
    rng = np.random.default_rng(5)
    info = ggquant.type_info(t)
    x = rng.standard_normal((4, 1024), dtype=np.float32)
    raw = rng.integers(0, 256, (4, ggquant.row_size(t, 1024)), dtype=np.uint8)
    for what, blocks in [("ggml blocks", ggml.quantize(t, x)), ("random bytes", raw)]:
        ours = ggquant.dequantize(blocks, t)
        assert_floats_bitwise_equal(ours, ggml.dequantize(t, blocks, 1024), info.block_size, f"{t} {what}")


@pytest.mark.parametrize("t", ALL_TYPES)
def test_imatrix_shape_is_checked(t):
    x = np.ones((2, 256), np.float32)
    with pytest.raises(ggquant.ShapeError, match="one per column"):
        ggquant.quantize(x, t, imatrix=np.ones(128, np.float32))


# ggml's test-quantize-fns limits for sqrt(sum(d^2)) / n on 0.1 + 2 cos(i + offset), n = 4096
RMSE_LIMIT = {"q2_K": 0.0075, "q3_K": 0.004, "q4_K": 0.002, "q5_K": 0.002, "q6_K": 0.002,
              "q4_0": 0.002, "q4_1": 0.002, "q5_0": 0.002, "q5_1": 0.002}  # fmt: skip


@given(
    t=st.sampled_from(ALL_TYPES),
    offset=st.floats(0, 1e4, allow_nan=False, width=32),
    weighted=st.booleans(),
    wseed=st.integers(0, 2**31),
)
def test_round_trip_error_within_ggml_limits(t, offset, weighted, wseed):
    n = 4096
    i = np.arange(n, dtype=np.float32)
    x = (0.1 + 2 * np.cos(i + np.float32(offset)).astype(np.float32)).astype(np.float32)[None, :]
    w = np.random.default_rng(wseed).uniform(0.1, 10, n).astype(np.float32) if weighted else None
    back = ggquant.dequantize(ggquant.quantize(x, t, imatrix=w), t)
    err = np.sqrt(np.sum((back.astype(np.float64) - x) ** 2)) / n
    assert err < RMSE_LIMIT[t], f"{t} offset={offset} weighted={weighted}: error {err} >= {RMSE_LIMIT[t]}"


@given(t=st.sampled_from(ALL_TYPES), rows=st.integers(1, 3), blocks=st.integers(1, 3), weighted=st.booleans())
def test_zeros_stay_zeros(t, rows, blocks, weighted):
    n = 256 * blocks
    x = np.zeros((rows, n), np.float32)
    w = np.ones(n, np.float32) if weighted else None
    back = ggquant.dequantize(ggquant.quantize(x, t, imatrix=w), t)
    assert np.array_equal(back, x)
