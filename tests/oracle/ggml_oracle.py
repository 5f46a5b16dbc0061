"""Test-only ctypes bridge to ggml's own C quantizers (the "oracle").

This module is never part of the ggquant library. Tests use it to compare
ggquant's kernels byte for byte against the reference implementation in
ggml's ``libggml-base`` shared library (as built from the llama.cpp sources
vendored in the ``llama-cpp-python`` sdist).

Library discovery, in order:

1. the directory named by the environment variable ``GGQUANT_GGML_LIB_DIR``;
2. the ``lib`` directory of the installed ``llama_cpp`` package (located with
   ``importlib.util.find_spec``, so ``llama_cpp`` itself is not imported);
3. otherwise the oracle is unavailable: :func:`get_oracle` returns ``None``
   and :func:`unavailable_reason` says why, so tests can skip cleanly.

Only ``libggml-base`` is loaded. Everything used here (``ggml_quantize_chunk``,
``ggml_get_type_traits``, ``ggml_row_size`` ...) lives there, and that
library has no dependency on the other ggml libraries. Its reference
quantizers are compiled for the baseline ISA of the build (no ``-march``,
no ``-mfma``), which is what llama.cpp's official x86-64 builds do.

Typical use in a test::

    import pytest, ggml_oracle
    oracle = ggml_oracle.get_oracle()
    if oracle is None:
        pytest.skip(ggml_oracle.unavailable_reason())
    ref = oracle.quantize_chunk(ggml_oracle.GGML_TYPE_Q4_K, x, None)

The module-level functions (``quantize_chunk``, ``dequantize``, ``row_size``
...) do the same through a cached instance and raise
:class:`OracleUnavailable` if no library was found.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pathlib
import sys
from typing import Optional

import numpy as np

ENV_VAR = "GGQUANT_GGML_LIB_DIR"

# enum ggml_type, as in ggml/include/ggml.h of llama.cpp vendored in
# llama-cpp-python 0.3.36 (ggml 0.25.3). Gaps are removed types.
GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q4_0 = 2
GGML_TYPE_Q4_1 = 3
GGML_TYPE_Q5_0 = 6
GGML_TYPE_Q5_1 = 7
GGML_TYPE_Q8_0 = 8
GGML_TYPE_Q8_1 = 9
GGML_TYPE_Q2_K = 10
GGML_TYPE_Q3_K = 11
GGML_TYPE_Q4_K = 12
GGML_TYPE_Q5_K = 13
GGML_TYPE_Q6_K = 14
GGML_TYPE_Q8_K = 15
GGML_TYPE_IQ2_XXS = 16
GGML_TYPE_IQ2_XS = 17
GGML_TYPE_IQ3_XXS = 18
GGML_TYPE_IQ1_S = 19
GGML_TYPE_IQ4_NL = 20
GGML_TYPE_IQ3_S = 21
GGML_TYPE_IQ2_S = 22
GGML_TYPE_IQ4_XS = 23
GGML_TYPE_I8 = 24
GGML_TYPE_I16 = 25
GGML_TYPE_I32 = 26
GGML_TYPE_I64 = 27
GGML_TYPE_F64 = 28
GGML_TYPE_IQ1_M = 29
GGML_TYPE_BF16 = 30
GGML_TYPE_TQ1_0 = 34
GGML_TYPE_TQ2_0 = 35
GGML_TYPE_MXFP4 = 39
GGML_TYPE_NVFP4 = 40
GGML_TYPE_Q1_0 = 41
GGML_TYPE_Q2_0 = 42
GGML_TYPE_COUNT = 43

# Types that ggml_quantize_chunk() handles in this ggml version. Any other
# type makes ggml hit GGML_ASSERT and abort() the whole process, so the
# wrapper refuses them up front.
QUANTIZE_CHUNK_TYPES = frozenset({
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
    GGML_TYPE_Q1_0, GGML_TYPE_Q2_0, GGML_TYPE_MXFP4, GGML_TYPE_NVFP4,
    GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
    GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0,
    GGML_TYPE_IQ2_XXS, GGML_TYPE_IQ2_XS, GGML_TYPE_IQ3_XXS, GGML_TYPE_IQ3_S,
    GGML_TYPE_IQ2_S, GGML_TYPE_IQ1_S, GGML_TYPE_IQ1_M, GGML_TYPE_IQ4_NL,
    GGML_TYPE_IQ4_XS,
})


class OracleUnavailable(RuntimeError):
    """Raised by the module-level helpers when no ggml library was found."""


# Mirror of `struct ggml_type_traits` (ggml.h, ggml 0.25.3):
#   const char * type_name; int64_t blck_size; int64_t blck_size_interleave;
#   size_t type_size; bool is_quantized;
#   ggml_to_float_t to_float; ggml_from_float_t from_float_ref;
class _TypeTraits(ctypes.Structure):
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


# void (*)(const void * x, float * y, int64_t k)
_ToFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
# void (*)(const float * x, void * y, int64_t k)
_FromFloat = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def _lib_filenames(stem: str) -> list[str]:
    if sys.platform == "win32":
        return [f"{stem}.dll", f"lib{stem}.dll"]
    if sys.platform == "darwin":
        return [f"lib{stem}.dylib", f"lib{stem}.so"]
    return [f"lib{stem}.so", f"lib{stem}.so.0"]


def _llama_cpp_lib_dir() -> Optional[pathlib.Path]:
    try:
        spec = importlib.util.find_spec("llama_cpp")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [os.path.dirname(spec.origin)]
    for root in roots:
        cand = pathlib.Path(root) / "lib"
        if cand.is_dir():
            return cand
    return None


def find_library() -> tuple[Optional[pathlib.Path], str]:
    """Return (path of libggml-base, how it was found) or (None, reason)."""
    tried = []
    env = os.environ.get(ENV_VAR)
    if env:
        d = pathlib.Path(env)
        for name in _lib_filenames("ggml-base"):
            if (d / name).is_file():
                return d / name, f"${ENV_VAR}={env}"
        # An explicit setting that does not work is an error worth reporting,
        # not a reason to silently fall back to another build.
        return None, f"${ENV_VAR}={env} has no {_lib_filenames('ggml-base')[0]}"
    tried.append(f"${ENV_VAR} not set")
    d = _llama_cpp_lib_dir()
    if d is not None:
        for name in _lib_filenames("ggml-base"):
            if (d / name).is_file():
                return d / name, f"llama_cpp package ({d})"
        tried.append(f"llama_cpp lib dir {d} has no libggml-base")
    else:
        tried.append("package llama_cpp not installed")
    return None, "ggml oracle unavailable: " + "; ".join(tried)


def _as_f32_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.float32:
        raise TypeError(f"expected float32 input, got {x.dtype}")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"expected a (nrows, n_per_row) array, got shape {x.shape}")
    return np.ascontiguousarray(x)


class GGMLOracle:
    """Handle on one loaded libggml-base."""

    def __init__(self, lib_path: os.PathLike | str):
        self.lib_path = pathlib.Path(lib_path)
        # libggml-base has no dependency on the other ggml libraries, so a
        # plain (RTLD_LOCAL) load is enough. Note: the dynamic loader matches
        # NEEDED entries by soname, so a libllama loaded later in the same
        # process reuses this libggml-base.so.0 - keep both from one build.
        self._lib = ctypes.CDLL(str(self.lib_path))
        L = self._lib

        L.ggml_quantize_chunk.restype = ctypes.c_size_t
        L.ggml_quantize_chunk.argtypes = [
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
        ]
        L.ggml_quantize_init.restype = None
        L.ggml_quantize_init.argtypes = [ctypes.c_int]
        L.ggml_quantize_free.restype = None
        L.ggml_quantize_free.argtypes = []
        L.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
        L.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
        L.ggml_row_size.restype = ctypes.c_size_t
        L.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        L.ggml_blck_size.restype = ctypes.c_int64
        L.ggml_blck_size.argtypes = [ctypes.c_int]
        L.ggml_type_size.restype = ctypes.c_size_t
        L.ggml_type_size.argtypes = [ctypes.c_int]
        L.ggml_type_name.restype = ctypes.c_char_p
        L.ggml_type_name.argtypes = [ctypes.c_int]
        L.ggml_is_quantized.restype = ctypes.c_bool
        L.ggml_is_quantized.argtypes = [ctypes.c_int]
        L.ggml_get_type_traits.restype = ctypes.POINTER(_TypeTraits)
        L.ggml_get_type_traits.argtypes = [ctypes.c_int]
        L.ggml_validate_row_data.restype = ctypes.c_bool
        L.ggml_validate_row_data.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]

        self._to_float: dict[int, object] = {}
        self._from_float_ref: dict[int, object] = {}
        self._check_traits_layout()

    # -- sanity -----------------------------------------------------------
    def _check_traits_layout(self) -> None:
        """Cross-check the ctypes mirror of ggml_type_traits against the
        scalar accessors, so a layout change in a new ggml is caught early."""
        for t in (GGML_TYPE_F16, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_IQ4_XS):
            tr = self._traits(t)
            name = tr.type_name.decode() if tr.type_name else None
            if (
                name != self.type_name(t)
                or tr.blck_size != self.blck_size(t)
                or tr.type_size != self.type_size(t)
                or bool(tr.is_quantized) != bool(self._lib.ggml_is_quantized(t))
                or not tr.to_float
            ):
                raise RuntimeError(
                    f"struct ggml_type_traits layout mismatch in {self.lib_path} "
                    f"(type {t}: {name!r}, blck {tr.blck_size}, size {tr.type_size}); "
                    "update _TypeTraits in ggml_oracle.py"
                )

    def _check_type(self, type_id: int) -> None:
        if not 0 <= int(type_id) < GGML_TYPE_COUNT:
            raise ValueError(f"type id {type_id} out of range")
        if self.blck_size(type_id) == 0:
            raise ValueError(f"type id {type_id} is a removed ggml type")

    def _traits(self, type_id: int) -> _TypeTraits:
        return self._lib.ggml_get_type_traits(int(type_id)).contents

    def _trait_fn(self, cache: dict, type_id: int, field: str, proto):
        """The type's traits function pointer `field` as a ctypes callable (cached)."""
        fn = cache.get(type_id)
        if fn is None:
            ptr = getattr(self._traits(type_id), field)
            if not ptr:
                raise ValueError(f"{self.type_name(type_id)} has no {field}")
            fn = cache[type_id] = proto(ptr)
        return fn

    # -- scalar info ------------------------------------------------------
    def type_name(self, type_id: int) -> str:
        return self._lib.ggml_type_name(int(type_id)).decode()

    def blck_size(self, type_id: int) -> int:
        return int(self._lib.ggml_blck_size(int(type_id)))

    def type_size(self, type_id: int) -> int:
        return int(self._lib.ggml_type_size(int(type_id)))

    def row_size(self, type_id: int, n: int) -> int:
        self._check_type(type_id)
        return int(self._lib.ggml_row_size(int(type_id), int(n)))

    def requires_imatrix(self, type_id: int) -> bool:
        return bool(self._lib.ggml_quantize_requires_imatrix(int(type_id)))

    def is_quantized(self, type_id: int) -> bool:
        return bool(self._lib.ggml_is_quantized(int(type_id)))

    def type_id(self, name: str) -> int:
        """Reverse of type_name (e.g. 'q4_K' -> 12); case-insensitive."""
        want = name.lower()
        for t in range(GGML_TYPE_COUNT):
            if self.blck_size(t) and self.type_name(t).lower() == want:
                return t
        raise KeyError(name)

    # -- quantize / dequantize -------------------------------------------
    def quantize_init(self, type_id: int) -> None:
        self._check_type(type_id)
        self._lib.ggml_quantize_init(int(type_id))

    def quantize_free(self) -> None:
        self._lib.ggml_quantize_free()

    def quantize_chunk(
        self, type_id: int, x: np.ndarray, imatrix: Optional[np.ndarray] = None
    ) -> np.ndarray:
        """ggml_quantize_chunk over all rows of x (float32, (nrows, n_per_row)).

        Returns uint8 array of shape (nrows, row_size(type_id, n_per_row)).
        imatrix, if given, is float32 of length n_per_row (shared by all rows).
        """
        type_id = int(type_id)
        if type_id not in QUANTIZE_CHUNK_TYPES:
            raise ValueError(f"ggml_quantize_chunk does not handle type {type_id}")
        x = _as_f32_2d(x)
        nrows, n_per_row = x.shape
        blck = self.blck_size(type_id)
        if n_per_row % blck:
            raise ValueError(
                f"n_per_row={n_per_row} is not a multiple of the "
                f"{self.type_name(type_id)} block size {blck}"
            )
        if imatrix is not None:
            imatrix = np.ascontiguousarray(np.asarray(imatrix, dtype=np.float32).reshape(-1))
            if imatrix.shape[0] != n_per_row:
                raise ValueError(f"imatrix has {imatrix.shape[0]} values, need {n_per_row}")
        elif self.requires_imatrix(type_id):
            raise ValueError(f"{self.type_name(type_id)} requires an imatrix")
        rs = self.row_size(type_id, n_per_row)
        out = np.zeros((nrows, rs), dtype=np.uint8)
        if nrows == 0:
            return out
        self._lib.ggml_quantize_init(type_id)  # IQ grids; no-op for others
        written = self._lib.ggml_quantize_chunk(
            type_id,
            x.ctypes.data,
            out.ctypes.data,
            0,
            nrows,
            n_per_row,
            None if imatrix is None else imatrix.ctypes.data,
        )
        if written != out.nbytes:
            raise RuntimeError(f"ggml_quantize_chunk wrote {written} bytes, expected {out.nbytes}")
        return out

    def quantize_row_ref(self, type_id: int, x: np.ndarray) -> np.ndarray:
        """traits->from_float_ref (quantize_row_*_ref) applied row by row.

        Note: for most types this equals quantize_chunk(..., imatrix=None),
        but not for all (ggml_quantize_chunk may use a different search).
        """
        type_id = int(type_id)
        self._check_type(type_id)
        fn = self._trait_fn(self._from_float_ref, type_id, "from_float_ref", _FromFloat)
        x = _as_f32_2d(x)
        nrows, n_per_row = x.shape
        if n_per_row % self.blck_size(type_id):
            raise ValueError("n_per_row not a multiple of the block size")
        self._lib.ggml_quantize_init(type_id)
        rs = self.row_size(type_id, n_per_row)
        out = np.zeros((nrows, rs), dtype=np.uint8)
        for r in range(nrows):
            fn(x[r].ctypes.data, out[r].ctypes.data, n_per_row)
        return out

    def dequantize(self, type_id: int, data: np.ndarray, n_per_row: int) -> np.ndarray:
        """traits->to_float over (nrows, row_bytes) uint8 -> (nrows, n_per_row) float32."""
        type_id = int(type_id)
        self._check_type(type_id)
        n_per_row = int(n_per_row)
        data = np.ascontiguousarray(np.asarray(data))
        if data.dtype != np.uint8:
            data = data.view(np.uint8)
        rs = self.row_size(type_id, n_per_row)
        if data.ndim == 1:
            if data.size % rs:
                raise ValueError(f"{data.size} bytes is not a whole number of {rs}-byte rows")
            data = data.reshape(-1, rs)
        if data.ndim != 2 or data.shape[1] != rs:
            raise ValueError(f"expected shape (nrows, {rs}), got {data.shape}")
        nrows = data.shape[0]
        if type_id == GGML_TYPE_F32:
            return data.view(np.float32).reshape(nrows, n_per_row).copy()
        fn = self._trait_fn(self._to_float, type_id, "to_float", _ToFloat)
        out = np.empty((nrows, n_per_row), dtype=np.float32)
        if nrows:
            fn(data.ctypes.data, out.ctypes.data, nrows * n_per_row)
        return out

    def validate_row_data(self, type_id: int, data: np.ndarray) -> bool:
        """ggml_validate_row_data (checks for NaN/Inf scales etc.)."""
        data = np.ascontiguousarray(np.asarray(data)).view(np.uint8)
        return bool(self._lib.ggml_validate_row_data(int(type_id), data.ctypes.data, data.nbytes))


_cached: Optional[GGMLOracle] = None
_reason: Optional[str] = None
_tried = False


def get_oracle() -> Optional[GGMLOracle]:
    """The cached oracle, or None if no libggml-base could be found/loaded."""
    global _cached, _reason, _tried
    if not _tried:
        _tried = True
        path, how = find_library()
        if path is None:
            _reason = how
        else:
            try:
                _cached = GGMLOracle(path)
                _reason = None
            except (OSError, AttributeError, RuntimeError) as e:
                _reason = f"ggml oracle: failed to load {path} (found via {how}): {e}"
    return _cached


def unavailable_reason() -> Optional[str]:
    """Why get_oracle() returned None (None if it is available)."""
    get_oracle()
    return _reason


def _need() -> GGMLOracle:
    o = get_oracle()
    if o is None:
        raise OracleUnavailable(_reason)
    return o


def quantize_chunk(type_id: int, x: np.ndarray, imatrix: Optional[np.ndarray] = None) -> np.ndarray:
    return _need().quantize_chunk(type_id, x, imatrix)


def dequantize(type_id: int, data: np.ndarray, n_per_row: int) -> np.ndarray:
    return _need().dequantize(type_id, data, n_per_row)


def row_size(type_id: int, n: int) -> int:
    return _need().row_size(type_id, n)


def type_name(type_id: int) -> str:
    return _need().type_name(type_id)


def blck_size(type_id: int) -> int:
    return _need().blck_size(type_id)


def type_size(type_id: int) -> int:
    return _need().type_size(type_id)


def requires_imatrix(type_id: int) -> bool:
    return _need().requires_imatrix(type_id)


__all__ = [
    "ENV_VAR", "GGMLOracle", "OracleUnavailable", "QUANTIZE_CHUNK_TYPES",
    "find_library", "get_oracle", "unavailable_reason",
    "quantize_chunk", "dequantize", "row_size", "type_name", "blck_size",
    "type_size", "requires_imatrix",
] + [n for n in dir() if n.startswith("GGML_TYPE_")]
