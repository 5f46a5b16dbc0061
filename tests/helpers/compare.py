"""Bit-exact comparison of quantized blocks with a readable report on mismatch."""

from __future__ import annotations

import numpy as np


def assert_blocks_equal(ours: np.ndarray, ref: np.ndarray, type_size: int, what: str = "") -> None:
    """Assert two uint8 block arrays are identical; on mismatch report the worst block and its bytes."""
    a = np.ascontiguousarray(ours).view(np.uint8).reshape(-1)
    b = np.ascontiguousarray(ref).view(np.uint8).reshape(-1)
    assert a.size == b.size, f"{what}: {a.size} bytes vs {b.size} bytes"
    if np.array_equal(a, b):
        return
    blocks_a = a.reshape(-1, type_size)
    blocks_b = b.reshape(-1, type_size)
    diff_bits = np.unpackbits(blocks_a ^ blocks_b, axis=1).sum(axis=1)
    bad = np.flatnonzero(diff_bits)
    worst = int(bad[np.argmax(diff_bits[bad])])
    cols = np.flatnonzero(blocks_a[worst] != blocks_b[worst])
    raise AssertionError(
        f"{what}: {bad.size} of {blocks_a.shape[0]} blocks differ; worst block {worst} "
        f"({int(diff_bits[worst])} bits) at byte offsets {cols.tolist()[:16]}\n"
        f"  ours: {blocks_a[worst].tobytes().hex(' ')}\n"
        f"  ref:  {blocks_b[worst].tobytes().hex(' ')}"
    )


def assert_floats_bitwise_equal(ours: np.ndarray, ref: np.ndarray, block_size: int, what: str = "") -> None:
    """Assert float32 arrays are equal bit for bit (NaN payloads included); report the worst block."""
    a = np.ascontiguousarray(ours, dtype=np.float32).view(np.uint32).reshape(-1)
    b = np.ascontiguousarray(ref, dtype=np.float32).view(np.uint32).reshape(-1)
    assert a.size == b.size, f"{what}: {a.size} values vs {b.size}"
    if np.array_equal(a, b):
        return
    bad = np.flatnonzero(a != b)
    blk = int(bad[0]) // block_size
    sl = slice(blk * block_size, (blk + 1) * block_size)
    raise AssertionError(
        f"{what}: {bad.size} values differ; first in block {blk}, value {int(bad[0])}\n"
        f"  ours: {a[sl].view(np.float32)[:8]}\n  ref:  {b[sl].view(np.float32)[:8]}"
    )
