"""Quantize and dequantize NumPy arrays to and from ggml's tensor types.

Results are bit-identical to ggml's reference quantizers (``ggml_quantize_chunk``), the code
``llama-quantize`` runs. Kernels run row-parallel on all cores with the GIL released.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from . import _core
from . import mlx as _mlx
from .errors import GGQuantError, ShapeError, UnsupportedTypeError
from .qtypes import GGMLType, resolve_type, type_info

_SIMD_INDEX = {"generic": 0, "avx2": 1, "avx512": 2}


def _source_view(x: np.ndarray) -> tuple[np.ndarray, str]:
    """A C-contiguous array the kernels read directly, and its dtype code. Copies only if needed."""
    dt = x.dtype
    if dt == np.float32:
        return np.ascontiguousarray(x), "f32"
    if dt == np.float16:
        return np.ascontiguousarray(x), "f16"
    if dt.name == "bfloat16" and dt.itemsize == 2:  # ml_dtypes.bfloat16: read its bits, no import needed
        return np.ascontiguousarray(x).view(np.uint16), "bf16"
    if dt == np.float64:
        return np.ascontiguousarray(x, dtype=np.float32), "f32"
    raise GGQuantError(
        f"expected float32, float16, bfloat16 (ml_dtypes) or float64 input, got {dt}; "
        "for raw bfloat16 bits in a uint16 array use x.view(ml_dtypes.bfloat16)"
    )


def _threads(nthreads: int | None) -> int:
    return 0 if nthreads is None else int(nthreads)


def _with_name(err: GGQuantError, name: str | None) -> GGQuantError:
    if name is None:
        return err
    return type(err)(f"tensor {name!r}: {err}")


def row_size(type: GGMLType | str | int, n: int) -> int:
    """Bytes of one row of ``n`` values of ``type``.

    Example:
        >>> import ggquant
        >>> ggquant.row_size("q8_0", 4096)
        4352
    """
    return _core.row_size(int(resolve_type(type)), int(n))


def quant_shape_to_byte_shape(shape: Sequence[int], type: GGMLType | str | int) -> tuple[int, ...]:
    """The shape of the uint8 array that holds a tensor of ``shape`` quantized to ``type``.

    Example:
        >>> import ggquant
        >>> ggquant.quant_shape_to_byte_shape((4, 64), "q4_0")
        (4, 36)
    """
    info = type_info(type)
    shape = tuple(int(s) for s in shape)
    if not shape or shape[-1] % info.block_size != 0:
        raise ShapeError(
            f"shape {shape}: the last dimension must be a multiple of the {info.name} block size {info.block_size}"
        )
    return (*shape[:-1], shape[-1] // info.block_size * info.type_size)


def quant_shape_from_byte_shape(shape: Sequence[int], type: GGMLType | str | int) -> tuple[int, ...]:
    """The tensor shape held by a uint8 array of ``shape`` in ``type`` (inverse of the above).

    Example:
        >>> import ggquant
        >>> ggquant.quant_shape_from_byte_shape((4, 36), "q4_0")
        (4, 64)
    """
    info = type_info(type)
    shape = tuple(int(s) for s in shape)
    if not shape or shape[-1] % info.type_size != 0:
        raise ShapeError(f"byte shape {shape}: the last dimension must be a multiple of the {info.name} block of {info.type_size} bytes")
    return (*shape[:-1], shape[-1] // info.type_size * info.block_size)


#: the MLX modes and presets :func:`quantize` routes to :func:`ggquant.mlx.quantize` (for type checkers)
MLXModeName = Literal["int2", "int3", "int4", "int5", "int6", "int8", "affine", "mxfp8", "mlx:int2", "mlx:int3",
                      "mlx:int4", "mlx:int5", "mlx:int6", "mlx:int8", "mlx:affine", "mlx:mxfp4", "mlx:nvfp4",
                      "mlx:mxfp8"]


@overload
def quantize(x: Any, type: MLXModeName, *, imatrix: Any = None, allow_nonfinite: bool = False,
             nthreads: int | None = None, name: str | None = None, simd: str | None = None) -> _mlx.MLXQuantized: ...


@overload
def quantize(x: Any, type: GGMLType | str | int, *, imatrix: Any = None, allow_nonfinite: bool = False,
             nthreads: int | None = None, name: str | None = None, simd: str | None = None) -> npt.NDArray[np.uint8]: ...


def quantize(
    x: Any,
    type: GGMLType | str | int,
    *,
    imatrix: Any = None,
    allow_nonfinite: bool = False,
    nthreads: int | None = None,
    name: str | None = None,
    simd: str | None = None,
) -> npt.NDArray[np.uint8] | _mlx.MLXQuantized:
    """Quantize ``x`` along its last axis to a ggml type (or an MLX mode).

    MLX modes: ``type`` may also name an MLX preset or mode (``"int4"``, ``"int8"``, ``"mxfp8"``,
    ``"affine"``, or any of them prefixed ``"mlx:"``); the result is then a
    :class:`ggquant.mlx.MLXQuantized` holding MLX's ``(weight, scales, biases)`` triple, identical
    to ``mlx.core.quantize``. ``"mxfp4"`` and ``"nvfp4"`` are also ggml types and mean those;
    write ``"mlx:mxfp4"`` / ``"mlx:nvfp4"`` for MLX's. See :func:`ggquant.mlx.quantize` for bits
    and group sizes other than the presets'.

    Args:
        x: array-like of float32, float16, bfloat16 (``ml_dtypes.bfloat16``) or float64 values
            (float64 is first rounded to float32, as llama.cpp does). Any number of dimensions;
            the last one is the row, and its length must be a multiple of the type's block size.
            Non-contiguous input is copied once; contiguous input is read in place.
        type: a :class:`GGMLType`, its name (``"q4_0"``, case-insensitive) or its id.
        imatrix: optional importance weights, one non-negative float per column (as llama.cpp
            passes to ``ggml_quantize_chunk``). Types without a weighted variant ignore them.
        allow_nonfinite: by default NaN or Inf in ``x`` raises :class:`NonFiniteError`; set True
            to quantize such rows anyway (with ggml's reference arithmetic).
        nthreads: threads to use; ``None`` means :func:`get_num_threads`. The bytes never depend on it.
        name: tensor name to quote in error messages.
        simd: force an instruction set (``"generic"``, ``"avx2"``, ``"avx512"``) for this call;
            ``None`` uses the active level. The bytes never depend on it.

    Returns:
        A uint8 array of shape ``x.shape[:-1] + (row_bytes,)`` holding the ggml blocks, ready to be
        written to a GGUF file (for F32/F16/BF16 the raw little-endian values); for an MLX mode an
        :class:`ggquant.mlx.MLXQuantized`.

    Raises:
        ShapeError: the last dimension is not a multiple of the block size (or ``x`` is 0-d).
        NonFiniteError: NaN or Inf in ``x`` (unless allowed) or in ``imatrix``.
        UnsupportedTypeError: the type is unknown or cannot be quantized.

    Example:
        >>> import numpy as np, ggquant
        >>> w = np.random.default_rng(0).standard_normal((4, 64), dtype=np.float32)
        >>> q = ggquant.quantize(w, "q8_0")
        >>> q.shape, q.dtype
        ((4, 68), dtype('uint8'))
        >>> back = ggquant.dequantize(q, "q8_0")
        >>> bool(np.abs(back - w).max() < 0.05)
        True
    """
    if _mlx.routes_to_mlx(type):  # MLX modes/presets ("int4", "mlx:nvfp4", ...) have their own kernels
        if imatrix is not None:
            raise GGQuantError(f"MLX mode {type!r} takes no imatrix")
        return _mlx.quantize(x, type, allow_nonfinite=allow_nonfinite, nthreads=nthreads, name=name)
    qtype = resolve_type(type)
    info = type_info(qtype)
    arr = np.asarray(x)
    try:
        if arr.ndim == 0:
            raise ShapeError(f"cannot quantize a 0-d array to {info.name}: need at least one row")
        if not info.can_quantize:
            raise UnsupportedTypeError(f"quantization to {info.name} is not supported")
        n = arr.shape[-1]
        if n == 0 or n % info.block_size != 0:
            raise ShapeError(
                f"shape {tuple(arr.shape)}: last dimension {n} is not a positive multiple of the "
                f"{info.name} block size {info.block_size}"
            )
        src, code = _source_view(arr)
        rows = src.reshape(-1, n)
        weights = None if imatrix is None else np.ascontiguousarray(np.asarray(imatrix, dtype=np.float32).reshape(-1))
        level = -1 if simd is None else _SIMD_INDEX.get(simd, -2)
        if level == -2:
            raise GGQuantError(f"unknown SIMD level {simd!r}; expected one of {sorted(_SIMD_INDEX)}")
        out = _core.quantize(int(qtype), rows, code, weights, _threads(nthreads), bool(allow_nonfinite), level)
    except GGQuantError as e:
        raise _with_name(e, name) from None
    return out.reshape(*arr.shape[:-1], out.shape[-1])


def dequantize(
    data: Any,
    type: GGMLType | str | int | None = None,
    shape: Sequence[int] | None = None,
    *,
    nthreads: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode ggml blocks back to float32.

    An :class:`ggquant.mlx.MLXQuantized` (what :func:`quantize` returns for MLX modes) needs no
    ``type``: it decodes to float32 holding exactly ``mlx.core.dequantize``'s values (see
    :func:`ggquant.mlx.dequantize` for other output dtypes).

    Args:
        data: the blocks: a uint8 array whose last axis holds whole rows (as :func:`quantize`
            returns), or any buffer (``bytes``, ``memoryview``, an array of another dtype) together
            with ``shape``.
        type: the ggml type of ``data``.
        shape: the tensor shape (values, not bytes). Default: derived from ``data``'s byte shape.
        nthreads: threads to use; ``None`` means :func:`get_num_threads`.
        name: tensor name to quote in error messages.

    Returns:
        A float32 array of ``shape``.

    Example:
        >>> import numpy as np, ggquant
        >>> q = ggquant.quantize(np.ones((2, 32), np.float32), "q4_0")
        >>> ggquant.dequantize(q, "q4_0").tolist()[0][:3]
        [1.0, 1.0, 1.0]
    """
    if isinstance(data, _mlx.MLXQuantized):
        return _mlx.dequantize(data, nthreads=nthreads)
    if type is None:
        raise GGQuantError("dequantize needs the ggml type of the data")
    qtype = resolve_type(type)
    info = type_info(qtype)
    try:
        if isinstance(data, np.ndarray):
            raw = np.ascontiguousarray(data).view(np.uint8)
        else:
            raw = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        if shape is None:
            if raw.ndim == 0 or (raw.ndim == 1 and not isinstance(data, np.ndarray)):
                raise ShapeError("pass shape= when data is a flat buffer")
            shape = quant_shape_from_byte_shape(raw.shape, qtype)
        shape = tuple(int(s) for s in shape)
        if not shape or any(s < 0 for s in shape):
            raise ShapeError(f"invalid shape {shape}")
        n = shape[-1]
        if n == 0 or n % info.block_size != 0:
            raise ShapeError(f"shape {shape}: last dimension {n} is not a positive multiple of the {info.name} block size {info.block_size}")
        nrows = math.prod(shape[:-1])
        rsize = _core.row_size(int(qtype), n)
        if raw.size != nrows * rsize:
            raise ShapeError(f"{raw.size} bytes of {info.name} data do not hold shape {shape} ({nrows * rsize} bytes)")
        out = _core.dequantize(int(qtype), raw.reshape(nrows, rsize), n, _threads(nthreads))
    except GGQuantError as e:
        raise _with_name(e, name) from None
    return out.reshape(shape)


__all__ = ["quantize", "dequantize", "row_size", "quant_shape_to_byte_shape", "quant_shape_from_byte_shape"]
