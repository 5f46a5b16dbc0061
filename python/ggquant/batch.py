"""Quantize many tensors (or parts of tensors) in one call, straight into caller-provided buffers.

:func:`quantize_batch` is what the converter's tensor loop runs: the source rows are read where they
lie (a memory map of a safetensors file, in bfloat16, float16, FP8 or float32: no float32 copy is made),
the blocks go directly into the output buffer at the given offset, and the row chunks of all jobs are
shared out over the threads together, so that small tensors (norms, biases) run alongside each other.
The bytes are exactly those of :func:`ggquant.quantize` on each job alone, whatever the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .errors import GGQuantError, ShapeError, UnsupportedTypeError
from .qtypes import GGMLType, resolve_type, type_info

# dtype names of NumPy / ml_dtypes arrays -> the kernels' source codes
_DTYPE_CODES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "float8_e4m3fn": "f8_e4m3",
                "float8_e5m2": "f8_e5m2"}
# raw storage: safetensors dtype names (BF16 read as uint16 bits, FP8 as uint8 bytes)
_STORAGE_CODES = {"F32": "f32", "F16": "f16", "BF16": "bf16", "F8_E4M3": "f8_e4m3", "F8_E5M2": "f8_e5m2"}


@dataclass
class QuantJob:
    """One source of whole rows and where its blocks go.

    Attributes:
        src: C-contiguous array of rows (its last axis is the row). Read only; a read-only memory
            map is fine.
        type: the ggml type to produce.
        out: a writable buffer (uint8 array, bytearray, writable mmap) receiving the blocks.
        offset: byte offset in ``out`` of the first block.
        dtype: the element type of ``src`` when its NumPy dtype does not say it: a safetensors dtype
            name (``"BF16"`` for uint16 bits, ``"F8_E4M3"`` / ``"F8_E5M2"`` for uint8 bytes). ``None``:
            from ``src.dtype`` (float32, float16, ml_dtypes bfloat16 / float8_e4m3fn / float8_e5m2).
        imatrix: importance weights, one per column, or ``None``.
        name: the tensor name quoted in errors.
    """

    src: np.ndarray
    type: GGMLType | str | int
    out: Any
    offset: int = 0
    dtype: str | None = None
    imatrix: Any = None
    name: str = ""


def _code(job: QuantJob) -> str:
    if job.dtype is not None:
        code = _STORAGE_CODES.get(job.dtype)
        if code is None:
            raise GGQuantError(f"{job.name or 'job'}: unknown source dtype {job.dtype!r}; expected one of {sorted(_STORAGE_CODES)}")
        return code
    code = _DTYPE_CODES.get(job.src.dtype.name)
    if code is None:
        raise GGQuantError(f"{job.name or 'job'}: cannot quantize {job.src.dtype} input; pass dtype= for raw bits")
    return code


def quantize_batch(jobs: Sequence[QuantJob], *, nthreads: int | None = None, allow_nonfinite: bool = False) -> list[int]:
    """Quantize every job in one parallel pass, writing each job's blocks into its ``out`` buffer.

    Args:
        jobs: the :class:`QuantJob` list; every source must hold whole rows of its type's blocks.
        nthreads: threads to use; ``None`` means :func:`ggquant.get_num_threads`. The bytes never depend on it.
        allow_nonfinite: quantize rows holding NaN or Inf (with ggml's reference arithmetic) instead
            of raising :class:`NonFiniteError`.

    Returns:
        The number of bytes written for each job.

    Raises:
        ShapeError: a row length that is not a multiple of the block size, an output too small.
        NonFiniteError: NaN or Inf in a source (the first row of the first such job is named).
        UnsupportedTypeError: a type that cannot be quantized.

    Example:
        >>> import numpy as np, ggquant
        >>> from ggquant.batch import QuantJob, quantize_batch
        >>> a, b = np.ones((2, 32), np.float32), np.ones(64, np.float16)
        >>> out = np.zeros(2 * 34 + 2 * 18, np.uint8)
        >>> quantize_batch([QuantJob(a, "q8_0", out), QuantJob(b, "q4_0", out, offset=68)])
        [68, 36]
        >>> bool((out[:68].reshape(2, 34) == ggquant.quantize(a, "q8_0")).all())
        True
    """
    packed = []
    for j in jobs:
        t = resolve_type(j.type)
        info = type_info(t)
        if not info.can_quantize:
            raise UnsupportedTypeError(f"{j.name or 'job'}: quantization to {info.name} is not supported")
        src = j.src
        if src.ndim == 0 or src.shape[-1] == 0:
            raise ShapeError(f"{j.name or 'job'}: cannot quantize shape {tuple(src.shape)}")
        src = np.ascontiguousarray(src)  # a view of whole rows is read in place; a strided one copied once
        w = None if j.imatrix is None else np.ascontiguousarray(np.asarray(j.imatrix, np.float32).reshape(-1))
        # the label goes into C++ messages: undecodable path bytes (surrogate escapes) as \xNN
        label = j.name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        packed.append((int(t), src.reshape(-1), _code(j), int(src.shape[-1]), j.out, int(j.offset), w, label))
    return list(_core.quantize_batch(packed, 0 if nthreads is None else int(nthreads), bool(allow_nonfinite)))


__all__ = ["QuantJob", "quantize_batch"]
