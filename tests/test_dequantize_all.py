"""Every type gguf-py can dequantize reads back bit for bit as gguf-py and ggml read it.

Random bytes reinterpreted as blocks reach every code, grid entry, sign pattern and scale. The
fp16 scale fields are once left random (NaN and Inf included: compared NaN-aware, since gguf-py's
NumPy arithmetic need not keep a NaN's payload bits) and once made finite (compared bitwise).
"""

from __future__ import annotations

import zlib

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as GT
from helpers.compare import assert_floats_bitwise_equal
from helpers.data import random_blocks

import ggquant

def _gguf_py_dequantizable() -> list[str]:
    """Quantized types that both gguf-py 0.19.0 and this build of ggquant know."""
    names = []
    for info in ggquant.all_types():
        if not info.is_quantized or info.name.upper() not in GT.__members__:
            continue
        try:
            gguf.quants.dequantize(np.zeros(info.type_size, np.uint8), GT[info.name.upper()])
        except NotImplementedError:
            continue
        names.append(info.name)
    return names


GGUF_PY_TYPES = [t for t in _gguf_py_dequantizable() if ggquant.type_info(t).can_dequantize]
# the types of this work package; the others (legacy, K-quants) have their own test files
NEW_TYPES = [
    "iq2_xxs",
    "iq2_xs",
    "iq2_s",
    "iq3_xxs",
    "iq3_s",
    "iq1_s",
    "iq1_m",
    "iq4_nl",
    "iq4_xs",
    "tq1_0",
    "tq2_0",
    "mxfp4",
    "nvfp4",
]
ORACLE_ONLY = ["q1_0", "q2_0"]  # in ggml, not in gguf-py 0.19.0

def assert_nan_aware_equal(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    nan_o, nan_r = np.isnan(ours), np.isnan(ref)
    assert np.array_equal(nan_o, nan_r), (
        f"{what}: NaN at different positions, first {np.flatnonzero(nan_o != nan_r)[:4]}"
    )
    a = np.where(nan_o, 0, ours).astype(np.float32).view(np.uint32)
    b = np.where(nan_r, 0, ref).astype(np.float32).view(np.uint32)
    bad = np.flatnonzero(a.ravel() != b.ravel())
    assert bad.size == 0, (
        f"{what}: {bad.size} values differ, first {bad[0]}: {ours.ravel()[bad[0]]} vs {ref.ravel()[bad[0]]}"
    )


def test_new_types_are_covered():
    assert set(NEW_TYPES) <= set(GGUF_PY_TYPES)


@pytest.mark.parametrize("t", GGUF_PY_TYPES)
@pytest.mark.parametrize("finite", [True, False], ids=["finite-scales", "random-scales"])
def test_random_blocks_match_gguf_py(t, finite):
    rng = np.random.default_rng(zlib.crc32(f"{t}{finite}".encode()))
    info = ggquant.type_info(t)
    nblocks = max(64, 4096 // info.block_size)
    raw = random_blocks(t, nblocks, rng, finite).reshape(8, -1)
    ours = ggquant.dequantize(raw, t)
    with np.errstate(all="ignore"):
        ref = gguf.quants.dequantize(raw, GT[t.upper()])
    assert ours.shape == ref.shape
    if finite:
        assert_floats_bitwise_equal(ours, ref, info.block_size, f"{t} vs gguf-py")
    else:
        assert_nan_aware_equal(ours, ref, f"{t} vs gguf-py")


@pytest.mark.parametrize("t", NEW_TYPES + ORACLE_ONLY)
def test_random_blocks_match_ggml(t, ggml):
    """Bitwise, NaN payloads included: the same C arithmetic gives the same NaNs."""
    rng = np.random.default_rng(zlib.crc32(t.encode()))
    info = ggquant.type_info(t)
    nblocks = max(64, 4096 // info.block_size)
    raw = random_blocks(t, nblocks, rng, finite=False).reshape(4, -1)
    n = nblocks // 4 * info.block_size
    ours = ggquant.dequantize(raw, t)
    ref = ggml.dequantize(t, raw, n).reshape(ours.shape)
    assert_floats_bitwise_equal(ours, ref, info.block_size, f"{t} vs ggml")


def test_every_gguf_py_type_can_be_read_back():
    """Every quantized type gguf-py reads, ggquant reads too."""
    missing = [t for t in _gguf_py_dequantizable() if not ggquant.type_info(t).can_dequantize]
    assert missing == []
