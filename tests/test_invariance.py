"""Every kernel writes the same bytes at every SIMD level and every thread count.

One table, one test: each ggml type of ``ggquant.all_types()`` (and each MLX mode) × each compiled SIMD
level × thread counts. The reference is the scalar path on one thread (``simd="generic"``, ``nthreads=1``).
Each family keeps the inputs its own test file used before (row counts chosen so that work items split
unevenly over threads); a type without a family entry gets the default inputs, so a type added to the
table is covered without touching this file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from helpers.compare import assert_blocks_equal, assert_floats_bitwise_equal
from helpers.data import imatrices, random_blocks
from helpers.mlx_data import AFFINE, BF16, DTYPES, FP, KINDS, make_data

import ggquant
import ggquant.mlx as gm

LEVELS = ggquant.config()["simd_available"]
THREADS = [1, 2, 3, 7]

Input = tuple[str, np.ndarray, np.ndarray | None]  # name, rows, importance vector


def _legacy() -> Iterator[Input]:
    yield "randn 301x256", np.random.default_rng(1234).standard_normal((301, 256), dtype=np.float32), None


def _kquant() -> Iterator[Input]:
    rng = np.random.default_rng(7)
    # 130 rows of 1024: more than one work item per thread (items hold 64 such rows), uneven split
    x = (rng.standard_normal((130, 1024)) * np.exp(rng.uniform(-5, 5, (130, 1)))).astype(np.float32)
    w = rng.random(1024).astype(np.float32)
    yield "scaled 130x1024", x, None
    yield "scaled 130x1024 weighted", x, w


def _iq4() -> Iterator[Input]:
    rng = np.random.default_rng(7)
    n = 2048
    x = rng.standard_normal((24, n), dtype=np.float32) * np.exp(rng.uniform(-8, 8, (24, 1))).astype(np.float32)
    x[3] = 0
    x[5, ::7] = 0
    for wname, w in imatrices(rng, n, samples=32, mean=True).items():
        yield f"scaled 24x2048 imatrix={wname}", x, w


def _tq_fp4() -> Iterator[Input]:
    yield "randn 40x2048", np.random.default_rng(1).standard_normal((40, 2048), dtype=np.float32), None


FAMILIES: dict[str, Callable[[], Iterator[Input]]] = {
    **dict.fromkeys(["f32", "f16", "bf16", "q8_0"], _legacy),
    **dict.fromkeys(["q2_K", "q3_K", "q4_K", "q5_K", "q6_K"], _kquant),
    # the weighted legacy quantizers share the K-quant search: both input sets
    **dict.fromkeys(["q4_0", "q4_1", "q5_0", "q5_1"], lambda: (*_legacy(), *_kquant())),
    **dict.fromkeys(["iq4_nl", "iq4_xs"], _iq4),
    **dict.fromkeys(["tq1_0", "tq2_0", "mxfp4", "nvfp4", "q1_0", "q2_0"], _tq_fp4),
}


def _default(t: str) -> Iterator[Input]:
    """Types without a family entry (e.g. newly quantizable ones): the K-quant inputs, weighted where required."""
    for name, x, w in _kquant():
        if w is not None or not ggquant.type_info(t).requires_imatrix:
            yield name, x, w


# ---- the MLX modes: (mode, bits, group_size) and their inputs

MLX_MODES = [("affine", b, g) for b, g in AFFINE] + FP


@functools.cache
def _mlx_inputs() -> tuple[tuple[str, np.ndarray, bool], ...]:
    """Rows over threads (bf16 outliers), and every kind of data per dtype with NaN/Inf let through."""
    out = [("outliers bf16 300x512", make_data("outliers", BF16, rows=300, n=512), False)]
    for dt in DTYPES:
        x = np.concatenate([make_data(k, dt) for k in KINDS])
        x[0, 3], x[1, 40:42], x[2, 100], x[3, :32] = np.nan, np.inf, -np.inf, np.nan
        out.append((f"all kinds {dt.name} non-finite", x, True))
    return tuple(out)


def _mlx_quantize(x: np.ndarray, mode: tuple[str, int, int], level: str, nthreads: int, nonfinite: bool):
    old = ggquant.get_simd_level()
    ggquant.set_simd_level(level)
    try:
        q = gm.quantize(x, mode[0], bits=mode[1], group_size=mode[2], allow_nonfinite=nonfinite, nthreads=nthreads)
        return q, gm.dequantize(q, nthreads=nthreads)
    finally:
        ggquant.set_simd_level(old)


@functools.cache
def _mlx_reference(mode: tuple[str, int, int], i: int):
    _, x, nonfinite = _mlx_inputs()[i]
    return _mlx_quantize(x, mode, "generic", 1, nonfinite)


# ---- the ggml types

GGML_TYPES = [info.name for info in ggquant.all_types() if info.can_quantize or info.can_dequantize]


@functools.cache
def _inputs(t: str) -> tuple[Input, ...]:
    return tuple(FAMILIES.get(t, lambda: _default(t))())


@functools.cache
def _reference(t: str, i: int) -> np.ndarray:
    name, x, w = _inputs(t)[i]
    return ggquant.quantize(x, t, imatrix=w, simd="generic", nthreads=1)


def _dequantize(blocks: np.ndarray, t: str, level: str, nthreads: int) -> np.ndarray:
    old = ggquant.get_simd_level()
    ggquant.set_simd_level(level)
    try:
        return ggquant.dequantize(blocks, t, nthreads=nthreads)
    finally:
        ggquant.set_simd_level(old)


@functools.cache
def _blocks_to_read(t: str) -> tuple[np.ndarray, ...]:
    """What the dequantize side reads: our own reference blocks, and random blocks with finite scales."""
    own = tuple(_reference(t, i) for i in range(len(_inputs(t)))) if ggquant.type_info(t).can_quantize else ()
    return (*own, random_blocks(t, 64 * 16, np.random.default_rng(3), finite=True).reshape(64, -1))


@pytest.mark.parametrize("nthreads", THREADS)
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("kernel", GGML_TYPES + [f"mlx:{m}:{b}:{g}" for m, b, g in MLX_MODES])
def test_same_bytes_at_every_simd_level_and_thread_count(kernel, level, nthreads):
    if kernel.startswith("mlx:"):
        _, m, b, g = kernel.split(":")
        mode = (m, int(b), int(g))
        for i, (name, x, nonfinite) in enumerate(_mlx_inputs()):
            ref, ref_back = _mlx_reference(mode, i)
            got, back = _mlx_quantize(x, mode, level, nthreads, nonfinite)
            for u, v, what in zip(got.arrays, ref.arrays, ("weight", "scales", "biases")):
                assert np.array_equal(u.view(np.uint8), v.view(np.uint8)), f"{kernel} {name} {what}"
            assert np.array_equal(back.view(np.uint8), ref_back.view(np.uint8)), f"{kernel} {name} dequantize"
        return
    t = kernel
    info = ggquant.type_info(t)
    if info.can_quantize:
        for i, (name, x, w) in enumerate(_inputs(t)):
            got = ggquant.quantize(x, t, imatrix=w, simd=level, nthreads=nthreads)
            assert_blocks_equal(got, _reference(t, i), info.type_size, f"{t} {name} simd={level} nthreads={nthreads}")
    for blocks in _blocks_to_read(t):
        ref = _dequantize(blocks, t, "generic", 1)
        got = _dequantize(blocks, t, level, nthreads)
        assert_floats_bitwise_equal(got, ref, info.block_size, f"{t} dequantize simd={level} nthreads={nthreads}")
