"""IQ1 / IQ2 / IQ3 quantizers (src/quants-iq-grid.cpp) and llama.cpp's presets that use them.

- Bytes equal ggml's ``ggml_quantize_chunk`` (tests/oracle, ctypes on libggml-base) with and without an
  imatrix, on varied data, at every SIMD level (thread counts: here and tests/test_invariance.py).
- Round-trip error within ggml's test-quantize-fns limits (Hypothesis).
- A converted file equals ``llama_model_quantize`` on ggquant's F32 output for the presets IQ2_XXS ...
  Q2_K_S, per-tensor types included (tests/llama_oracle.py).

Oracle tests skip when libggml / llama-cpp-python are missing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import hf_models
import llama_oracle
import numpy as np
import pytest
from helpers.compare import assert_blocks_equal, assert_floats_bitwise_equal
from helpers.data import imatrices
from helpers.gguf_files import assert_same_tensors
from hypothesis import given
from hypothesis import strategies as st

import ggquant
from ggquant import GGMLType
from ggquant.plan import LLAMA_FTYPE

TYPES = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"]
LEVELS = ggquant.config()["simd_available"]


def cases(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Named inputs of row length n that reach the branches of the grid searches."""
    randn = rng.standard_normal((4, n), dtype=np.float32)
    randn[2] = 0.0  # a zero row
    # all-zero blocks inside a row: skipped blocks (IQ3_S then shifts its later indices, as ggml does)
    zero_blocks = rng.standard_normal((3, n), dtype=np.float32)
    zero_blocks[0, :32] = 0
    zero_blocks[1, 16:48] = 0
    zero_blocks[2, 256 - 16 :] = 0
    outlier = rng.standard_normal((3, n), dtype=np.float32)
    outlier[0, 17] = 1e4
    outlier[1, n - 1] = -3e4
    outlier[2, 100] = 1e6
    const = np.stack([np.full(n, 0.37, np.float32), np.full(n, -2.5, np.float32)])  # ties in the IQ1 sort
    tiny = (rng.standard_normal((2, n)) * 1e-30).astype(np.float32)  # scales underflow fp16
    small = (rng.standard_normal((2, n)) * 1e-9).astype(np.float32)  # around the all-zero thresholds
    subnormal = (rng.standard_normal((1, n)) * 1e-40).astype(np.float32)
    scaled = (rng.standard_normal((3, n)) * np.exp(rng.uniform(-12, 12, (3, 1)))).astype(np.float32)
    grid = (rng.integers(-6, 7, (2, n)) / 2).astype(np.float32)  # values on the lattice: exact ties
    sparse = np.where(rng.random((2, n)) < 0.9, 0, rng.standard_normal((2, n))).astype(np.float32)
    # block scales far apart within a super-block: 4-bit (3-bit) block scales clamp to zero
    blockwise = (rng.standard_normal((2, n)) * np.exp(rng.uniform(-10, 10, (2, n // 16))).repeat(16, 1)).astype(
        np.float32
    )
    return {k: v for k, v in locals().items() if isinstance(v, np.ndarray)}


def weightings(t: str, n: int) -> dict[str, np.ndarray | None]:
    """The shared importance vectors, without ``none`` for the types ggml refuses to quantize without one."""
    ims = imatrices(np.random.default_rng(n + 1), n, samples=32, mean=True)
    if ggquant.type_info(t).requires_imatrix:
        del ims["none"]
    return ims


@pytest.mark.parametrize("t", TYPES)
@pytest.mark.parametrize("n", [256, 768, 4096])
def test_quantize_matches_ggml(t, n, ggml):
    rng = np.random.default_rng(n)
    info = ggquant.type_info(t)
    xs = cases(rng, n) if n < 4096 else {"randn": rng.standard_normal((2, n), dtype=np.float32)}
    for wname, w in weightings(t, n).items():
        for case, x in xs.items():
            ref = ggml.quantize(t, x, w)
            for level in LEVELS:
                ours = ggquant.quantize(x, t, imatrix=w, allow_nonfinite=True, simd=level, nthreads=1)
                assert_blocks_equal(ours, ref, info.type_size, f"{t} n={n} {case} imatrix={wname} simd={level}")
            ours = ggquant.quantize(x, t, imatrix=w, allow_nonfinite=True, nthreads=2)
            assert_blocks_equal(ours, ref, info.type_size, f"{t} n={n} {case} imatrix={wname} 2 threads")


@pytest.mark.parametrize("t", TYPES)
def test_many_rows_over_threads_match_ggml(t, ggml):
    """More rows than one work item, split over 1..3 threads: still ggml's bytes."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((70, 1024)) * np.exp(rng.uniform(-4, 4, (70, 1)))).astype(np.float32)
    w = rng.random(1024).astype(np.float32)
    ref = ggml.quantize(t, x, w)
    for nthreads in (1, 2, 3):
        got = ggquant.quantize(x, t, imatrix=w, allow_nonfinite=True, nthreads=nthreads)
        assert_blocks_equal(got, ref, ggquant.type_info(t).type_size, f"{t} nthreads={nthreads}")


@pytest.mark.parametrize("t", TYPES)
def test_dequantize_of_our_blocks_matches_ggml(t, ggml, rng):
    x = rng.standard_normal((4, 512), dtype=np.float32)
    w = rng.random(512).astype(np.float32)
    q = ggquant.quantize(x, t, imatrix=w)
    assert_floats_bitwise_equal(ggquant.dequantize(q, t), ggml.dequantize(t, q, 512), 256, t)


@pytest.mark.parametrize("t", [t for t in TYPES if ggquant.type_info(t).requires_imatrix])
def test_missing_imatrix_names_the_tensor(t):
    with pytest.raises(ggquant.GGQuantError, match=r"blk\.3\.ffn_down\.weight.*importance matrix"):
        ggquant.quantize(np.ones((2, 256), np.float32), t, name="blk.3.ffn_down.weight")


def test_first_use_from_many_threads_builds_the_tables_once():
    """The lattice tables are built lazily; concurrent first calls (fresh process) give the same bytes."""
    code = """
import threading, numpy as np, ggquant
TYPES = %r
x = np.random.default_rng(0).standard_normal((8, 512), dtype=np.float32)
w = np.random.default_rng(1).random(512).astype(np.float32)
out = {}
def run(i, t):
    out[i, t] = ggquant.quantize(x, t, imatrix=w, allow_nonfinite=True, nthreads=1)
ths = [threading.Thread(target=run, args=(i, t)) for i in range(3) for t in TYPES]
for th in ths: th.start()
for th in ths: th.join()
for t in TYPES:
    ref = ggquant.quantize(x, t, imatrix=w, allow_nonfinite=True, nthreads=1)
    assert all(np.array_equal(out[i, t], ref) for i in range(3)), t
print("ok")
""" % (TYPES,)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("t", TYPES)
def test_values_where_ggml_aborts_give_deterministic_blocks(t):
    """|x| ~ 1e18 makes ggml's weights Inf and its neighbour search assert; ours takes the first
    neighbour instead, the same at every SIMD level and thread count."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 512)) * 1e18).astype(np.float32)
    w = rng.random(512).astype(np.float32)
    ref = ggquant.quantize(x, t, imatrix=w, allow_nonfinite=True, simd="generic", nthreads=1)
    for level in LEVELS:
        for nthreads in (1, 2):
            got = ggquant.quantize(x, t, imatrix=w, allow_nonfinite=True, simd=level, nthreads=nthreads)
            assert_blocks_equal(got, ref, ggquant.type_info(t).type_size, f"{t} {level} {nthreads}")


# test-quantize-fns: rms error sqrt(sum d^2)/n of 0.1 + 2 cos(i + offset) over 4096 values. ggml's limits:
# IQ2_S 0.0075 (2 bits), IQ3_S 0.004, IQ3_XXS 0.005. ggml skips IQ2_XXS, IQ2_XS, IQ1_S and IQ1_M there (no
# from_float without an imatrix); they get the limit of their bit class: IQ2_XS 0.0075 (2 bits), IQ2_XXS
# 0.01 (ternary, 2.06 bpw), IQ1_S / IQ1_M 0.025 (binary).
LIMITS = {"iq2_s": 0.0075, "iq3_s": 0.004, "iq3_xxs": 0.005, "iq2_xs": 0.0075, "iq2_xxs": 0.01, "iq1_s": 0.025,
          "iq1_m": 0.025}


@given(t=st.sampled_from(TYPES), offset=st.floats(0, 1000, allow_nan=False), weighted=st.booleans())
def test_round_trip_error_like_test_quantize_fns(t, offset, weighted):
    n = 4096
    x = (0.1 + 2 * np.cos(np.arange(n, dtype=np.float32) + np.float32(offset))).astype(np.float32)[None]
    w = (1 + np.sin(np.arange(n, dtype=np.float32)) ** 2).astype(np.float32)
    if not weighted and not ggquant.type_info(t).requires_imatrix:
        w = None
    back = ggquant.dequantize(ggquant.quantize(x, t, imatrix=w), t)
    err = float(np.sqrt(np.sum((back.astype(np.float64) - x) ** 2)) / n)
    assert err < LIMITS[t], f"{t}: rms error {err}"


@given(t=st.sampled_from(TYPES), rows=st.integers(1, 3), blocks=st.integers(1, 3))
def test_zeros_stay_zeros(t, rows, blocks):
    x = np.zeros((rows, 256 * blocks), np.float32)
    back = ggquant.dequantize(ggquant.quantize(x, t, imatrix=np.ones(x.shape[1], np.float32)), t)
    assert not np.any(back)


# ---- presets: per-tensor types and bytes equal llama_model_quantize

IQ_PRESETS = ["IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ1_S", "IQ1_M", "Q2_K_S"]
LLAMA_MISSING = llama_oracle.available()


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 4-layer llama (hidden 256, GQA 2) as an HF directory, its ggquant F32 GGUF and an imatrix."""
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("iqgrid")
    d = root / "hf"
    hf_models.build("llama", d, hidden=256, layers=4, vocab=384)
    f32 = root / "f32.gguf"
    r = ggquant.convert(d, f32, "F32", quiet=True)
    rng = np.random.default_rng(11)
    imx = {t.name: rng.uniform(0.05, 4.0, t.shape[-1]).astype(np.float32)
           for t in r.plan.tensors if len(t.shape) == 2 and t.name != "token_embd.weight"}
    return d, f32, imx


@pytest.mark.skipif(LLAMA_MISSING is not None, reason=str(LLAMA_MISSING))
@pytest.mark.parametrize("preset", IQ_PRESETS)
def test_preset_equals_llama_model_quantize(preset, tiny_llama, tmp_path):
    d, f32, imx = tiny_llama
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    res = ggquant.convert(d, ours, preset, imatrix=imx, quiet=True)
    llama_oracle.quantize_file(str(f32), str(theirs), LLAMA_FTYPE[preset], imatrix=imx)
    assert_same_tensors(ours, theirs, preset)
    # the preset really uses the i-quants (or Q2_K for Q2_K_S) somewhere
    low = {GGMLType.IQ2_XXS, GGMLType.IQ2_XS, GGMLType.IQ2_S, GGMLType.IQ3_XXS, GGMLType.IQ3_S, GGMLType.IQ1_S,
           GGMLType.IQ1_M, GGMLType.Q2_K}
    assert {t.type for t in res.plan.tensors} & low, preset


@pytest.mark.parametrize("preset", ["IQ2_XXS", "IQ2_XS", "IQ1_S", "Q2_K_S"])
def test_preset_without_imatrix_is_refused_naming_a_tensor(preset, tiny_llama, tmp_path):
    d, _, _ = tiny_llama
    with pytest.raises(ggquant.GGQuantError, match=r"blk\.\d+\.\w+\.weight.*importance matrix"):
        ggquant.convert(d, tmp_path / "out.gguf", preset, quiet=True)
    assert not (tmp_path / "out.gguf").exists()
