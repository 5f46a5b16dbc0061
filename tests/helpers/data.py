"""Test inputs shared by the kernel tests: random blocks, importance matrices."""

from __future__ import annotations

import numpy as np

import ggquant

# byte offsets of the fp16 scale(s) in one block
FP16_SCALE_OFFSETS = {"tq1_0": [52], "tq2_0": [64], "q1_0": [0], "q2_0": [0]}
for _t in ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq4_nl", "iq4_xs"]:
    FP16_SCALE_OFFSETS[_t] = [0]


def random_blocks(t: str, nblocks: int, rng: np.random.Generator, finite: bool) -> np.ndarray:
    """(nblocks, type_size) random bytes read as blocks: they reach every code, grid entry, sign pattern and
    scale of a format; with ``finite`` the fp16 scales are never Inf or NaN."""
    info = ggquant.type_info(t)
    raw = rng.integers(0, 256, (nblocks, info.type_size), dtype=np.uint8)
    if finite:
        for off in FP16_SCALE_OFFSETS.get(t, []):
            h = raw[:, off : off + 2].copy().view(np.uint16)
            h &= np.uint16(0xBFFF)  # clear the top exponent bit: never Inf/NaN
            raw[:, off : off + 2] = h.view(np.uint8)
        if t == "iq1_m":  # the fp16 scale is spread over the top nibbles of the four scale words
            sc = raw[:, 48:56].copy().view(np.uint16)
            sc[:, 3] &= np.uint16(0xBFFF)
            raw[:, 48:56] = sc.view(np.uint8)
    return raw


def imatrices(rng: np.random.Generator, n: int, samples: int = 64, mean: bool = False) -> dict[str, np.ndarray | None]:
    """Named importance vectors of length n: none, llama-imatrix-like sums of squares, holes, all zeros."""
    sq = rng.standard_normal((samples, n)) ** 2
    sumsq = (sq.mean(axis=0) if mean else sq.sum(axis=0)).astype(np.float32)  # like llama-imatrix
    holes = rng.random(n).astype(np.float32)
    holes[rng.random(n) < 0.3] = 0  # columns never activated
    return {"none": None, "sumsq": sumsq, "holes": holes, "zeros": np.zeros(n, np.float32)}
