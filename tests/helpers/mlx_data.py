"""The deterministic matrices of the MLX-mode tests (tests/test_mlx.py and the invariance test)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float32), np.dtype(np.float16), BF16]
AFFINE = [(b, g) for b in (1, 2, 3, 4, 5, 6, 8) for g in (32, 64, 128)]
FP = [("mxfp4", 4, 32), ("nvfp4", 4, 16), ("mxfp8", 8, 32)]
KINDS = ["randn", "zero_groups", "outliers", "constant", "tiny", "huge", "extreme", "grid"]


def make_data(kind: str, dtype: np.dtype, rows: int = 24, n: int = 256, seed: int = 0) -> np.ndarray:
    """Deterministic test matrices covering the cases where quantizers differ."""
    rng = np.random.default_rng([seed, KINDS.index(kind), DTYPES.index(dtype)])
    x = rng.standard_normal((rows, n)) * np.exp(rng.uniform(-3, 3, (rows, 1)))
    big = {np.dtype(np.float16): 6e4, BF16: 1e37, np.dtype(np.float32): 1e37}[dtype]
    small = {np.dtype(np.float16): 1e-7, BF16: 1e-39, np.dtype(np.float32): 1e-42}[dtype]
    if kind == "zero_groups":
        for r in range(rows):
            s = rng.integers(0, n // 16) * 16
            x[r, s : s + 16 * rng.integers(1, 5)] = 0.0
        x[0, :32] = -0.0
    elif kind == "outliers":
        idx = rng.integers(0, x.size, x.size // 50)
        x.flat[idx] *= rng.choice([-1, 1], idx.size) * 1000
    elif kind == "constant":
        x = np.repeat(rng.standard_normal((rows, n // 16)) * 10, 16, axis=1)
        x[1] = 0.0
        x[2, ::2] = 1.0
        x[2, 1::2] = -1.0
    elif kind == "tiny":
        x = rng.standard_normal((rows, n)) * small * np.exp(rng.uniform(0, 8, (rows, 1)))
        x[::3, ::5] = 0.0
    elif kind == "huge":
        x = np.clip(rng.standard_normal((rows, n)) * big / 4, -big, big)
        x[0, :16] = big
        x[1, :16] = -big
    elif kind == "extreme":  # the dtype's largest values: group ranges overflow to Inf
        top = {np.dtype(np.float16): 65504.0, BF16: 3.38e38, np.dtype(np.float32): 3.4e38}[dtype]
        x = np.clip(rng.standard_normal((rows, n)) * top, -top, top)
        x[:, ::7] = top
        x[:, 1::7] = -top
    elif kind == "grid":  # exact multiples of powers of two: ties for every rounding step
        x = rng.integers(-16, 17, (rows, n)) / 4.0 * 2.0 ** rng.integers(-8, 8, (rows, 1))
    out = x.astype(np.float32).astype(dtype)
    assert np.all(np.isfinite(out.astype(np.float32)))
    return out
