"""Checks of the arguments the public functions share (array-likes, thread counts, flags).

Each turns what NumPy or pybind11 would reject with a ``TypeError``/``ValueError``/``OverflowError``
into a :class:`ggquant.GGQuantError` that says which argument was wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import GGQuantError, ShapeError

_MAX_THREADS = 1 << 16


def threads_arg(nthreads: Any) -> int:
    """``nthreads`` as the kernels take it: ``None`` -> 0 (all threads), else an int in [0, 65536]."""
    if nthreads is None:
        return 0
    if isinstance(nthreads, bool) or not isinstance(nthreads, (int, np.integer)):
        raise GGQuantError(f"nthreads must be an int or None, got {type(nthreads).__name__}")
    n = int(nthreads)
    if not 0 <= n <= _MAX_THREADS:
        raise GGQuantError(f"nthreads must be between 0 and {_MAX_THREADS}, got {n}")
    return n


def int_arg(value: Any, what: str, lo: int = 0, hi: int = 1 << 62) -> int:
    """An int argument (not a bool, float or str) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise GGQuantError(f"{what} must be an int, got {type(value).__name__}")
    v = int(value)
    if not lo <= v <= hi:
        raise GGQuantError(f"{what} must be between {lo} and {hi}, got {v}")
    return v


def shape_arg(shape: Any, what: str = "shape") -> tuple[int, ...]:
    """A shape: a sequence of non-negative ints, each below 2^62."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ShapeError(f"{what} must be a sequence of ints, got {type(shape).__name__}") from None
    try:
        return tuple(int_arg(d, what) for d in dims)
    except GGQuantError:
        raise ShapeError(f"{what} must be a sequence of non-negative ints, got {dims!r}"[:200]) from None


def float_arg(value: Any, what: str) -> float:
    """A float argument (an int or float, not a str)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise GGQuantError(f"{what} must be a number, got {type(value).__name__}")
    return float(value)


def array_arg(x: Any, what: str, dtype: Any = None) -> np.ndarray:
    """``np.asarray(x, dtype)``, refusing ragged, object and string input with a ggquant error."""
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ShapeError(f"{what} is not a numeric array: {e}") from None
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16" and not arr.dtype.name.startswith("float8"):
        raise GGQuantError(f"{what} must be a numeric array, got dtype {arr.dtype}")
    return arr


def bool_arg(value: Any, what: str) -> bool:
    """A flag: ``bool`` (or a NumPy bool) only, so a mistyped argument is not silently truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise GGQuantError(f"{what} must be True or False, got {value!r}"[:200])
    return bool(value)
