"""F32/F16/BF16 and Q4_0..Q8_0: bit-exact against gguf-py (which matches ggml's reference C code)."""

from __future__ import annotations

import gguf
import ml_dtypes
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GT
from helpers.compare import assert_blocks_equal, assert_floats_bitwise_equal
from helpers.gil import assert_calls_overlap

import ggquant

TYPES = ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"]
LEVELS = ggquant.config()["simd_available"]


def gguf_quantize(x: np.ndarray, t: str) -> np.ndarray:
    with np.errstate(all="ignore"):  # fp16 overflow of huge inputs is part of the test
        out = gguf.quants.quantize(x, GT[t.upper()])
    return np.ascontiguousarray(out).view(np.uint8).reshape(*x.shape[:-1], -1)


def cases(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Named inputs that exercise every branch of the reference quantizers."""
    randn = rng.standard_normal((33, 512), dtype=np.float32)  # odd row count
    randn[5] = 0.0  # a zero row
    ties = np.tile(np.array([3.0, -3.0] * 16, np.float32), (4, 8))  # equal magnitudes: first one wins
    tiny = (rng.standard_normal((8, 256)) * 1e-30).astype(np.float32)  # scales underflow fp16
    subnormal = (rng.standard_normal((8, 256)) * 1e-39).astype(np.float32)  # float32 subnormals
    huge = (rng.standard_normal((8, 256)) * 1e30).astype(np.float32)  # scales overflow fp16
    big = (rng.standard_normal((8, 256)) * 6e4).astype(np.float32)  # near the fp16 limit
    outlier = rng.standard_normal((8, 256), dtype=np.float32)
    outlier[:, 17] = 1e4
    const = np.full((4, 256), 0.37, np.float32)
    halves = (np.arange(-64, 64, dtype=np.float32) * 0.5).reshape(1, 128).repeat(2, 0)  # rounding ties
    uniform = rng.uniform(-1, 1, (16, 1024)).astype(np.float32)
    return {k: v for k, v in locals().items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("t", TYPES)
def test_quantize_matches_gguf_py(t, rng):
    info = ggquant.type_info(t)
    for case, x in cases(rng).items():
        ref = gguf_quantize(x, t)
        for level in LEVELS:
            ours = ggquant.quantize(x, t, simd=level)
            assert ours.shape == ref.shape
            assert_blocks_equal(ours, ref, info.type_size, f"{t} {case} simd={level}")


@pytest.mark.parametrize("t", TYPES)
def test_quantize_matches_ggml(t, rng, ggml):
    """Against ggml's own ggml_quantize_chunk, including blocks where gguf-py's port differs."""
    info = ggquant.type_info(t)
    all_cases = cases(rng)
    negzero = np.zeros((3, 64), np.float32)
    negzero[1] = -0.0
    all_cases["negative_zero"] = negzero
    for case, x in all_cases.items():
        ref = ggml.quantize(t, x)
        for level in LEVELS:
            assert_blocks_equal(ggquant.quantize(x, t, simd=level), ref, info.type_size, f"{t} {case} simd={level} vs ggml")
        assert_floats_bitwise_equal(ggquant.dequantize(ref, t), ggml.dequantize(t, ref, x.shape[1]),
                                    info.block_size, f"{t} {case} dequantize vs ggml")


@pytest.mark.parametrize("t", ["q4_0", "q5_0"])
def test_negative_zero_block_follows_ggml_not_gguf_py(t):
    """ggml starts its signed max at +0.0 and keeps it for an all-zero block, so d = +0.0 / -8 = -0.0
    whatever the zeros' signs; gguf-py's port picks the block's first value instead and writes +0.0
    for a block of -0.0. Real files follow ggml's C code."""
    x = np.zeros((2, 32), np.float32)
    x[1] = -0.0
    for level in LEVELS:
        q = ggquant.quantize(x, t, simd=level)
        assert q[:, :2].tobytes() == b"\x00\x80" * 2  # fp16 -0.0, little-endian
    assert gguf_quantize(x, t)[0, :2].tobytes() == b"\x00\x80"  # gguf-py agrees for +0.0 zeros


@pytest.mark.parametrize("t", TYPES)
def test_dequantize_matches_gguf_py(t, rng):
    info = ggquant.type_info(t)
    for case, x in cases(rng).items():
        blocks = gguf_quantize(x, t)
        with np.errstate(all="ignore"):
            ref = gguf.quants.dequantize(blocks, GT[t.upper()])
        assert_floats_bitwise_equal(ggquant.dequantize(blocks, t), ref, info.block_size, f"{t} {case}")


@pytest.mark.parametrize("t", TYPES)
def test_dequantize_random_bytes_matches_gguf_py(t, rng):
    """Arbitrary bytes read as blocks (NaN/Inf scales included) decode like gguf-py, bit for bit."""
    info = ggquant.type_info(t)
    raw = rng.integers(0, 256, (17, 8 * info.type_size), dtype=np.uint8)
    ours = ggquant.dequantize(raw, t)
    with np.errstate(all="ignore"):
        ref = gguf.quants.dequantize(raw, GT[t.upper()])
    # NumPy may produce a NaN with another payload for NaN * x; compare NaN-ness there, bits elsewhere.
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(ours), nan), f"{t}: NaN positions differ"
    assert_floats_bitwise_equal(np.where(nan, 0, ours), np.where(nan, 0, ref), info.block_size, f"{t} random bytes")


@pytest.mark.parametrize("t", ["q4_0", "q8_0", "f16"])
def test_half_precision_inputs_equal_float32_path(t, rng):
    x32 = rng.standard_normal((9, 128), dtype=np.float32)
    x16 = x32.astype(np.float16)
    assert np.array_equal(ggquant.quantize(x16, t), ggquant.quantize(x16.astype(np.float32), t))
    xbf = x32.astype(ml_dtypes.bfloat16)
    assert np.array_equal(ggquant.quantize(xbf, t), ggquant.quantize(xbf.astype(np.float32), t))
    assert np.array_equal(ggquant.quantize(x32.astype(np.float64), t), ggquant.quantize(x32, t))


def test_non_contiguous_and_nd_inputs(rng):
    x = rng.standard_normal((64, 96), dtype=np.float32)
    xt = x.T  # (96, 64), not C-contiguous
    assert np.array_equal(ggquant.quantize(xt, "q8_0"), ggquant.quantize(np.ascontiguousarray(xt), "q8_0"))
    strided = x[::2, :64]
    assert np.array_equal(ggquant.quantize(strided, "q4_0"), ggquant.quantize(strided.copy(), "q4_0"))
    x3 = rng.standard_normal((2, 3, 64), dtype=np.float32)
    q3 = ggquant.quantize(x3, "q5_1")
    assert q3.shape == (2, 3, 48)
    assert np.array_equal(q3.reshape(6, 48), ggquant.quantize(x3.reshape(6, 64), "q5_1"))
    assert ggquant.dequantize(q3, "q5_1").shape == (2, 3, 64)
    empty = ggquant.quantize(np.zeros((0, 64), np.float32), "q8_0")
    assert empty.shape == (0, 68)


def test_dequantize_flat_buffer_with_shape(rng):
    x = rng.standard_normal((4, 64), dtype=np.float32)
    q = ggquant.quantize(x, "q4_1")
    from_bytes = ggquant.dequantize(q.tobytes(), "q4_1", shape=(4, 64))
    assert np.array_equal(from_bytes, ggquant.dequantize(q, "q4_1"))
    with pytest.raises(ggquant.ShapeError, match="do not hold shape"):
        ggquant.dequantize(q.tobytes(), "q4_1", shape=(5, 64))
    with pytest.raises(ggquant.ShapeError, match="pass shape="):
        ggquant.dequantize(q.tobytes(), "q4_1")


def test_shape_error_names_shape_block_and_tensor():
    x = np.zeros((3, 100), np.float32)
    with pytest.raises(ggquant.ShapeError) as e:
        ggquant.quantize(x, "q4_0", name="blk.0.attn_q.weight")
    msg = str(e.value)
    assert "(3, 100)" in msg and "32" in msg and "blk.0.attn_q.weight" in msg
    assert isinstance(e.value, ValueError)
    with pytest.raises(ggquant.ShapeError, match="0-d"):
        ggquant.quantize(np.float32(1.0), "q8_0")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_rejected_by_default(bad):
    x = np.ones((4, 64), np.float32)
    x[2, 33] = bad
    with pytest.raises(ggquant.NonFiniteError, match=r"row 2, column 33"):
        ggquant.quantize(x, "q8_0")
    with pytest.raises(ggquant.NonFiniteError, match="w.0"):
        ggquant.quantize(x.astype(np.float16), "q4_0", name="w.0")
    # allowed: every SIMD level gives the reference bytes, equal to gguf-py's
    for level in LEVELS:
        got = ggquant.quantize(x, "q8_0", allow_nonfinite=True, simd=level)
        ref = ggquant.quantize(x, "q8_0", allow_nonfinite=True, simd="generic")
        assert np.array_equal(got, ref)
    assert np.array_equal(ggquant.quantize(x, "bf16", allow_nonfinite=True), gguf_quantize(x, "bf16"))


def test_bad_input_dtype_and_type():
    with pytest.raises(ggquant.GGQuantError, match="int32"):
        ggquant.quantize(np.ones((2, 32), np.int32), "q8_0")
    with pytest.raises(ggquant.UnsupportedTypeError):
        ggquant.quantize(np.ones((2, 32), np.float32), "q9_9")
    with pytest.raises(ggquant.UnsupportedTypeError, match="not supported"):
        ggquant.quantize(np.ones((2, 32), np.float32), "q8_1")
    with pytest.raises(ggquant.GGQuantError, match="SIMD"):
        ggquant.quantize(np.ones((2, 32), np.float32), "q8_0", simd="neon")


def test_imatrix_validation():
    x = np.ones((2, 64), np.float32)
    with pytest.raises(ggquant.ShapeError, match="one per column"):
        ggquant.quantize(x, "q8_0", imatrix=np.ones(32, np.float32))
    with pytest.raises(ggquant.GGQuantError, match="negative"):
        ggquant.quantize(x, "q8_0", imatrix=-np.ones(64, np.float32))
    w = np.ones(64, np.float32)
    w[3] = np.nan
    with pytest.raises(ggquant.NonFiniteError, match="importance weight 3"):
        ggquant.quantize(x, "q8_0", imatrix=w)
    # q8_0 has no weighted variant in ggml: weights are accepted and change nothing
    assert np.array_equal(ggquant.quantize(x, "q8_0", imatrix=np.ones(64, np.float32)), ggquant.quantize(x, "q8_0"))


def test_kernels_release_the_gil():
    """Two Python threads inside the kernel at the same time: their call windows overlap."""
    x = np.random.default_rng(0).standard_normal((2048, 4096), dtype=np.float32)
    ggquant.quantize(x[:8], "q5_1", nthreads=1)  # warm up
    assert_calls_overlap(lambda: ggquant.quantize(x, "q5_1", nthreads=1))


def test_simd_level_switch_and_config():
    cfg = ggquant.config()
    assert cfg["version"] == ggquant.__version__
    assert cfg["simd_active"] in cfg["simd_available"]
    old = ggquant.get_simd_level()
    try:
        ggquant.set_simd_level("generic")
        assert ggquant.get_simd_level() == "generic"
    finally:
        ggquant.set_simd_level(old)
    with pytest.raises(ggquant.GGQuantError, match="unknown SIMD level"):
        ggquant.set_simd_level("sse9")
    old_threads = ggquant.get_num_threads()
    try:
        ggquant.set_num_threads(1)
        assert ggquant.get_num_threads() == 1
    finally:
        ggquant.set_num_threads(None)
    assert ggquant.get_num_threads() == old_threads
