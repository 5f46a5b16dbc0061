"""Hypothesis properties of the legacy formats: error bounds per block, zeros, shape arithmetic."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ggquant

FP16_REL = 2.0**-11  # relative rounding of an fp16 scale
ABS_SLACK = 2.0**-24 * 256  # fp16 subnormal spacing, times the largest multiplier


def block_bound(t: str, blk: np.ndarray) -> np.ndarray:
    """Largest error each block's format allows, from the block's own range."""
    amax = np.abs(blk).max(axis=1)
    lo, hi = blk.min(axis=1), blk.max(axis=1)
    if t == "q8_0":
        b = amax / 127 * (0.5 + 127 * FP16_REL)
    elif t == "q4_0":  # the value opposite the extreme may clamp: one full step
        b = amax / 8 * (1 + 16 * FP16_REL)
    elif t == "q5_0":
        b = amax / 16 * (1 + 32 * FP16_REL)
    elif t == "q4_1":
        b = (hi - lo) / 15 * (0.5 + 15 * FP16_REL) + np.abs(lo) * FP16_REL
    elif t == "q5_1":
        b = (hi - lo) / 31 * (0.5 + 31 * FP16_REL) + np.abs(lo) * FP16_REL
    elif t == "f16":
        b = amax * FP16_REL
    elif t == "bf16":
        b = amax * 2.0**-8
    else:
        b = np.zeros_like(amax)
    return b * (1 + 1e-5) + ABS_SLACK


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


@given(
    t=st.sampled_from(["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "bf16", "f32"]),
    x=hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.sampled_from([32, 64, 128])), elements=finite),
)
def test_round_trip_error_within_block_bound(t, x):
    back = ggquant.dequantize(ggquant.quantize(x, t), t)
    blk = x.reshape(-1, 32).astype(np.float64)
    err = np.abs(back.reshape(-1, 32).astype(np.float64) - blk).max(axis=1)
    bound = block_bound(t, blk)
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), f"block {worst}: error {err[worst]} > bound {bound[worst]}"


@given(
    t=st.sampled_from(["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f16", "bf16"]),
    rows=st.integers(0, 5),
    blocks=st.integers(1, 8),
)
def test_zeros_stay_zeros(t, rows, blocks):
    x = np.zeros((rows, 32 * blocks), np.float32)
    back = ggquant.dequantize(ggquant.quantize(x, t), t, shape=x.shape)
    assert back.shape == x.shape
    assert not np.any(back)


@given(
    t=st.sampled_from([ti.name for ti in ggquant.all_types()]),
    lead=st.lists(st.integers(0, 7), max_size=3),
    nblocks=st.integers(1, 9),
)
def test_shape_byte_shape_round_trip(t, lead, nblocks):
    info = ggquant.type_info(t)
    shape = (*lead, nblocks * info.block_size)
    bshape = ggquant.quant_shape_to_byte_shape(shape, t)
    assert bshape == (*lead, nblocks * info.type_size)
    assert ggquant.quant_shape_from_byte_shape(bshape, t) == shape
    assert ggquant.row_size(t, shape[-1]) == bshape[-1]
