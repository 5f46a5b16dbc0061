"""MLX quantization modes: bit-identical to mlx.core.quantize / mlx.core.dequantize (the oracle is
MLX itself, ``pip install mlx[cpu]`` on Linux), plus round-trip bounds (SIMD levels and thread counts:
tests/test_invariance.py)."""

from __future__ import annotations

import ggquant
import ggquant.mlx as gm
import numpy as np
import pytest
from helpers.gil import assert_calls_overlap
from helpers.mlx_data import AFFINE, BF16, DTYPES, FP, KINDS, make_data

mx = pytest.importorskip("mlx.core", reason="mlx is not installed (pip install 'mlx[cpu]'); MLX oracle tests skipped")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes is needed for bfloat16 inputs")

def to_mx(a: np.ndarray):
    if a.dtype == BF16:
        return mx.array(a.view(np.uint16)).view(mx.bfloat16)
    return mx.array(a)


def to_np(a) -> np.ndarray:
    if a.dtype == mx.bfloat16:
        return np.array(a.view(mx.uint16)).view(BF16)
    return np.array(a)


def mlx_quantize(x, mode, bits, gs, **kw):
    return [to_np(a) for a in mx.quantize(to_mx(x), group_size=gs, bits=bits, mode=mode, **kw)]


def mlx_dequantize(arrays, mode, bits, gs, dtype=None, **kw):
    mx_arrays = [to_mx(a) for a in arrays]
    if len(mx_arrays) == 2:
        mx_arrays.append(None)
    out = mx.dequantize(*mx_arrays, group_size=gs, bits=bits, mode=mode, dtype=dtype, **kw)
    return to_np(out)


def assert_same(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs MLX {theirs.shape}"
    assert ours.dtype == theirs.dtype, f"{what}: dtype {ours.dtype} vs MLX {theirs.dtype}"
    a, b = np.ascontiguousarray(ours).view(np.uint8), np.ascontiguousarray(theirs).view(np.uint8)
    if not np.array_equal(a, b):
        bad = np.argwhere(
            ours.view(a.dtype if ours.itemsize == 1 else f"u{ours.itemsize}")
            != theirs.view(a.dtype if theirs.itemsize == 1 else f"u{theirs.itemsize}")
        )
        r = tuple(bad[0])
        pytest.fail(f"{what}: {len(bad)} elements differ; first at {r}: ours {ours[r]!r} vs MLX {theirs[r]!r}")


def assert_same_values(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    o, t = ours.astype(np.float32), theirs.astype(np.float32)
    assert o.shape == t.shape, what
    same = (o.view(np.uint32) == t.view(np.uint32)) | (np.isnan(o) & np.isnan(t))
    if not same.all():
        r = tuple(np.argwhere(~same)[0])
        pytest.fail(f"{what}: {(~same).sum()} values differ; first at {r}: ours {o[r]!r} vs MLX {t[r]!r}")


# ---- quantize: bit-identical triples


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("bits,gs", AFFINE, ids=lambda v: str(v))
def test_affine_matches_mlx(bits, gs, dtype):
    for kind in KINDS:
        x = make_data(kind, dtype)
        q = gm.quantize(x, "affine", bits=bits, group_size=gs)
        ref = mlx_quantize(x, "affine", bits, gs)
        assert len(ref) == 3
        for ours, theirs, what in zip(q[:3], ref, ("weight", "scales", "biases")):
            assert_same(ours, theirs, f"{kind} {dtype.name} affine b{bits} g{gs} {what}")
        # dequantize in MLX's default dtype (the scales') and in float32
        assert_same_values(gm.dequantize(q), mlx_dequantize(ref, "affine", bits, gs), f"{kind} dequantize")
        if kind in ("randn", "huge"):
            for dt, mdt in ((np.float32, mx.float32), (np.float16, mx.float16), ("bfloat16", mx.bfloat16)):
                assert_same_values(
                    gm.dequantize(q, dtype=dt),
                    mlx_dequantize(ref, "affine", bits, gs, dtype=mdt),
                    f"{kind} dequantize as {dt}",
                )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("mode,bits,gs", FP, ids=lambda v: str(v))
def test_fp_modes_match_mlx(mode, bits, gs, dtype):
    for kind in KINDS:
        x = make_data(kind, dtype)
        q = gm.quantize(x, mode)
        assert (q.bits, q.group_size, q.biases) == (bits, gs, None)
        ref = mlx_quantize(x, mode, bits, gs)
        assert len(ref) == 2
        assert_same(q.weight, ref[0], f"{kind} {dtype.name} {mode} weight")
        assert_same(q.scales, ref[1], f"{kind} {dtype.name} {mode} scales")
        assert_same_values(gm.dequantize(q), mlx_dequantize(ref, mode, bits, gs), f"{kind} {mode} dequantize")
        for dt, mdt in ((np.float32, mx.float32), (np.float16, mx.float16)):
            assert_same_values(
                gm.dequantize(q, dtype=dt),
                mlx_dequantize(ref, mode, bits, gs, dtype=mdt),
                f"{kind} {mode} dequantize as {dt}",
            )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("gscale", [1.0, 3.5, 448.0 * 6.0, 1e-3])
def test_nvfp4_global_scale_matches_mlx(gscale, dtype):
    x = make_data("randn", dtype)
    q = gm.quantize(x, "nvfp4", global_scale=gscale)
    ref = mlx_quantize(x, "nvfp4", 4, 16, global_scale=mx.array(gscale, dtype=mx.float32))
    assert_same(q.weight, ref[0], "weight")
    assert_same(q.scales, ref[1], "scales")
    theirs = mlx_dequantize(ref, "nvfp4", 4, 16, global_scale=mx.array(gscale, dtype=mx.float32))
    assert theirs.dtype == np.float32
    assert_same_values(gm.dequantize(q), theirs, "dequantize")


@pytest.mark.parametrize("mode,bits,gs", [*FP, ("affine", 4, 32), ("affine", 3, 64), ("affine", 6, 128)], ids=str)
def test_dequantize_arbitrary_codes_and_scales(mode, bits, gs):
    """Every code and every scale byte (E8M0 0 and 255, E4M3 0x7F/0xFF) decodes as MLX decodes it."""
    rng = np.random.default_rng(7)
    rows, n = 16, 512
    w = rng.integers(0, 2**32, (rows, n * bits // 32), dtype=np.uint64).astype(np.uint32)
    if mode == "affine":
        for dt in DTYPES:
            s = (rng.standard_normal((rows, n // gs)) * 10).astype(np.float32).astype(dt)
            b = (rng.standard_normal((rows, n // gs)) * 10).astype(np.float32).astype(dt)
            q = gm.MLXQuantized(w, s, b, mode, bits, gs)
            assert_same_values(gm.dequantize(q), mlx_dequantize([w, s, b], mode, bits, gs), f"affine {dt.name}")
        return
    s = np.resize(np.arange(256, dtype=np.uint8), (rows, n // gs))
    q = gm.MLXQuantized(w, s, None, mode, bits, gs)
    for dt, mdt in ((None, None), (np.float32, mx.float32), (np.float16, mx.float16), ("bfloat16", mx.bfloat16)):
        assert_same_values(gm.dequantize(q, dtype=dt), mlx_dequantize([w, s], mode, bits, gs, dtype=mdt), f"{dt}")


def test_three_d_and_float64_inputs():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 128))
    q = ggquant.quantize(x, "int4")
    ref = mlx_quantize(x.astype(np.float32), "affine", 4, 32)
    for ours, theirs in zip(q[:3], ref):
        assert_same(ours, theirs, "3-D float64")
    assert q.shape == x.shape
    assert ggquant.dequantize(q).shape == x.shape


# ---- the ggquant.quantize front door and presets


@pytest.mark.parametrize(
    "name,mode,bits,gs",
    [
        ("int4", "affine", 4, 32),
        ("int8", "affine", 8, 64),
        ("mxfp8", "mxfp8", 8, 32),
        ("mlx:nvfp4", "nvfp4", 4, 16),
        ("mlx:mxfp4", "mxfp4", 4, 32),
        ("INT4", "affine", 4, 32),
    ],
)
def test_presets_through_ggquant_quantize(name, mode, bits, gs):
    x = make_data("randn", np.dtype(np.float32))
    q = ggquant.quantize(x, name)
    assert isinstance(q, ggquant.MLXQuantized)
    assert (q.mode, q.bits, q.group_size) == (mode, bits, gs)
    ref = mlx_quantize(x, mode, bits, gs)
    for ours, theirs in zip(q.arrays, ref):
        assert_same(ours, theirs, name)
    assert_same_values(ggquant.dequantize(q), mlx_dequantize(ref, mode, bits, gs), name)
    # the MLX kwargs and arrays feed mlx directly
    back = mx.dequantize(*q.to_mlx(), **q.mlx_kwargs, dtype=mx.float32)
    assert_same_values(ggquant.dequantize(q), np.array(back), "to_mlx")


def test_ggml_names_stay_ggml():
    """mxfp4/nvfp4 are also ggml types; the bare names keep meaning those in ggquant.quantize."""
    assert not gm.routes_to_mlx("mxfp4") and not gm.routes_to_mlx("nvfp4")
    assert gm.routes_to_mlx("mlx:mxfp4") and gm.routes_to_mlx("int4") and gm.routes_to_mlx("mxfp8")
    assert not gm.routes_to_mlx("q4_0") and not gm.routes_to_mlx(2)


# ---- properties


@pytest.mark.parametrize("bits,gs", AFFINE, ids=str)
def test_affine_round_trip_bound(bits, gs):
    """|w - dequantize(quantize(w))| <= |scale| per group (MLX's own test bound)."""
    x = np.concatenate([make_data(k, np.dtype(np.float32)) for k in ("randn", "outliers", "grid", "constant")])
    q = gm.quantize(x, "affine", bits=bits, group_size=gs)
    err = np.abs(gm.dequantize(q) - x).reshape(x.shape[0], -1, gs).max(axis=-1)
    assert np.all(err <= np.abs(q.scales) * (1 + 1e-6))


def test_zeros_stay_zero():
    x = np.zeros((4, 128), np.float32)
    for mode in ("int4", "int8", "mlx:mxfp4", "mlx:nvfp4", "mxfp8"):
        assert np.all(ggquant.dequantize(ggquant.quantize(x, mode)) == 0.0), mode


def test_fp8_codec_against_ml_dtypes():
    """E4M3 encode = ml_dtypes' float8_e4m3fn rounding for in-range values; decode equals it exactly."""
    e4m3 = np.dtype(ml_dtypes.float8_e4m3fn)
    for b in range(256):
        ref = np.array([b], np.uint8).view(e4m3).astype(np.float32)[0]
        got = ggquant._core.mlx_fp8_e4m3_decode(b)
        assert got == ref or (np.isnan(got) and np.isnan(ref)), b
    vals = np.random.default_rng(5).standard_normal(4000).astype(np.float32) * 2.0 ** np.arange(-12, 8).repeat(200)
    vals = vals[np.abs(vals) < 448]
    ours = np.array([ggquant._core.mlx_fp8_e4m3_encode(float(v)) for v in vals], np.uint8)
    assert np.array_equal(ours, vals.astype(e4m3).view(np.uint8))


# ---- errors


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "affine", "bits": 7},
        {"mode": "affine", "group_size": 16},
        {"mode": "nvfp4", "group_size": 32},
        {"mode": "mxfp8", "bits": 4},
        {"mode": "mxfp4", "global_scale": 2.0},
    ],
)
def test_rejects_what_mlx_rejects(kwargs):
    x = make_data("randn", np.dtype(np.float32))
    with pytest.raises(ggquant.GGQuantError):
        gm.quantize(x, **kwargs)
    mkw = {k: (mx.array(v) if k == "global_scale" else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError):
        mx.quantize(mx.array(x), **mkw)


def test_shape_and_nonfinite_errors():
    with pytest.raises(ggquant.ShapeError):
        ggquant.quantize(np.ones((2, 40), np.float32), "int4")
    x = np.ones((2, 64), np.float32)
    x[1, 5] = np.nan
    with pytest.raises(ggquant.NonFiniteError, match="row 1, column 5"):
        ggquant.quantize(x, "int8")
    with pytest.raises(ggquant.UnsupportedTypeError):
        gm.quantize(x, "int4x")


# ---- packed expert groups


def test_quantize_experts_list_equals_stacked_mlx():
    rng = np.random.default_rng(11)
    experts = [rng.standard_normal((16, 128)).astype(np.float32).astype(BF16) for _ in range(4)]
    q = gm.quantize_experts(experts, "int4")
    ref = mlx_quantize(np.stack(experts), "affine", 4, 32)
    for ours, theirs in zip(q[:3], ref):
        assert_same(ours, theirs, "experts")
    q3 = gm.quantize_experts(np.stack(experts), "mlx:nvfp4")
    ref3 = mlx_quantize(np.stack(experts), "nvfp4", 4, 16)
    assert_same(q3.weight, ref3[0], "stacked nvfp4")
    with pytest.raises(ggquant.ShapeError):
        gm.quantize_experts([experts[0], experts[1][:8]], "int4")


def test_pack_expert_group_layout_and_round_trip():
    rng = np.random.default_rng(12)
    t = {
        "model.layers.1.mlp.experts.down_proj.weight": rng.standard_normal((4, 32, 64)).astype(np.float32),
        "model.layers.1.mlp.experts.gate_proj.weight": [rng.standard_normal((64, 32)).astype(np.float32)] * 4,
        "model.layers.1.mlp.experts.up_proj.weight": rng.standard_normal((4, 64, 32)).astype(np.float32),
    }
    types = {
        "model.layers.1.mlp.experts.down_proj.weight": "int8",
        "model.layers.1.mlp.experts.gate_proj.weight": "mxfp8",
        "model.layers.1.mlp.experts.up_proj.weight": "mlx:nvfp4",
    }
    arrays, meta = gm.pack_expert_group(t, types)
    down = "model.layers.1.mlp.experts.down_proj.weight"
    assert set(arrays) == {
        down,
        down + ".scale",
        down + ".bias",
        *(k + s for k in t if k != down for s in ("", ".scale")),
    }
    assert meta[down + ".quant_type"] == "int8" and meta[down + ".group_size"] == "64"
    assert meta["model.layers.1.mlp.experts.up_proj.weight.quant_type"] == "nvfp4"
    assert "quant_type" not in meta
    ref = mlx_quantize(t[down], "affine", 8, 64)
    assert_same(arrays[down], ref[0], "down weight")
    back = gm.expert_group_from_blob(arrays, meta)
    for k, q in back.items():
        assert q.mode == resolve_mode(types[k])
        expect = np.stack(t[k]) if isinstance(t[k], list) else t[k]
        assert ggquant.dequantize(q).shape == expect.shape
    _, meta_u = gm.pack_expert_group(t, "int4")
    assert meta_u == {"quant_type": "int4", "group_size": "32"}


def resolve_mode(name: str) -> str:
    return gm.resolve(name)[0]


def test_expert_group_blob_read_by_safetensors_and_mlx(tmp_path):
    """The blob is a plain safetensors file (read back by the safetensors package and by mx.load)
    holding Ollama's names and metadata; MLX dequantizes each member with its own mode."""
    st = pytest.importorskip("safetensors")
    pytest.importorskip("ggquant.safetensors", reason="needs ggquant's safetensors writer")
    rng = np.random.default_rng(13)
    t = {
        "model.layers.3.mlp.experts.down_proj.weight": [
            rng.standard_normal((32, 64)).astype(np.float32).astype(BF16) for _ in range(3)
        ],
        "model.layers.3.mlp.experts.up_proj.weight": rng.standard_normal((3, 64, 32)).astype(np.float32).astype(BF16),
    }
    types = {
        "model.layers.3.mlp.experts.down_proj.weight": "int8",
        "model.layers.3.mlp.experts.up_proj.weight": "mlx:nvfp4",
    }
    path = tmp_path / "blob.safetensors"
    meta = gm.save_expert_group(path, t, types)
    with st.safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == meta
        names = set(f.keys())
    down, up = types
    assert names == {down, down + ".scale", down + ".bias", up, up + ".scale"}
    loaded = mx.load(str(path))
    for name, (mode, bits, gs) in ((down, ("affine", 8, 64)), (up, ("nvfp4", 4, 16))):
        stacked = np.stack(t[name]) if isinstance(t[name], list) else t[name]
        ref = mlx_quantize(stacked, mode, bits, gs)
        assert_same(to_np(loaded[name]), ref[0], name)
        assert_same(to_np(loaded[name + ".scale"]), ref[1], name + ".scale")
        arrays = [loaded[name], loaded[name + ".scale"]] + ([loaded[name + ".bias"]] if mode == "affine" else [None])
        theirs = np.array(mx.dequantize(*arrays, group_size=gs, bits=bits, mode=mode, dtype=mx.float32))
        assert_same_values(ggquant.dequantize(gm.load_expert_group(path)[name]), theirs, name)


@pytest.mark.parametrize("mode", ["int4", "mlx:nvfp4"])
def test_kernels_release_the_gil(mode):
    """Two Python threads inside the MLX kernels at the same time: their call windows overlap."""
    x = np.random.default_rng(0).standard_normal((1024, 4096), dtype=np.float32)
    q = gm.quantize(x, mode, nthreads=1)

    def work():
        gm.quantize(x, mode, nthreads=1)
        gm.dequantize(q, nthreads=1)

    assert_calls_overlap(work)


_MODES_FOR_PROPERTIES = [("affine", 4, 32), ("affine", 3, 64), ("affine", 5, 32), ("affine", 1, 32), *FP]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_property_any_finite_values_match_mlx(dtype):
    """Hypothesis-drawn matrices (any finite values of the dtype, incl. subnormals and extremes)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    finfo = ml_dtypes.finfo(dtype)
    elements = st.floats(
        min_value=-float(finfo.max), max_value=float(finfo.max), allow_nan=False, allow_infinity=False, width=32
    ).map(lambda v: np.float32(v).astype(dtype))
    scale = st.sampled_from([1.0, 1e-3, 1e3, float(finfo.tiny), float(finfo.max) / 8])

    @settings(max_examples=60)
    @given(hnp.arrays(dtype, (2, 64), elements=elements), scale)
    def check(x, s):
        with np.errstate(over="ignore"):
            x = (x.astype(np.float32) * np.float32(s)).astype(dtype)
        if not np.all(np.isfinite(x.astype(np.float32))):
            return
        for mode, bits, gs in _MODES_FOR_PROPERTIES:
            q = gm.quantize(x, mode, bits=bits, group_size=gs)
            ref = mlx_quantize(x, mode, bits, gs)
            for ours, theirs, what in zip(q.arrays, ref, ("weight", "scales", "biases")):
                assert_same(ours, theirs, f"{mode} {bits} {gs} {what}")
            assert_same_values(gm.dequantize(q), mlx_dequantize(ref, mode, bits, gs), f"{mode} dequantize")

    check()
