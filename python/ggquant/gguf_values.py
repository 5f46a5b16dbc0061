"""The one registry of GGUF metadata value types: the on-disk ids (``gguf_type`` in ``src/io/gguf.h``,
``GGUFValueType`` in gguf-py) and the NumPy dtype of each fixed-size one.

Example:
    >>> from ggquant.gguf_values import GGUFValueType
    >>> GGUFValueType.UINT32.nbytes, int(GGUFValueType.STRING), GGUFValueType.STRING.nbytes
    (4, 8, 0)
"""

from __future__ import annotations

import enum

import numpy as np


class GGUFValueType(enum.IntEnum):
    """Metadata value types of GGUF (the on-disk ids)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12

    @property
    def nbytes(self) -> int:
        """Bytes of one value; 0 for STRING and ARRAY, whose size depends on the value (as ``gguf_type_size``)."""
        dt = NUMPY_DTYPES.get(self)
        return 0 if dt is None else dt.itemsize


#: the little-endian NumPy dtype of each fixed-size value type (BOOL is one byte)
NUMPY_DTYPES: dict[GGUFValueType, np.dtype] = {
    GGUFValueType.UINT8: np.dtype("<u1"),
    GGUFValueType.INT8: np.dtype("<i1"),
    GGUFValueType.UINT16: np.dtype("<u2"),
    GGUFValueType.INT16: np.dtype("<i2"),
    GGUFValueType.UINT32: np.dtype("<u4"),
    GGUFValueType.INT32: np.dtype("<i4"),
    GGUFValueType.FLOAT32: np.dtype("<f4"),
    GGUFValueType.BOOL: np.dtype("<u1"),
    GGUFValueType.UINT64: np.dtype("<u8"),
    GGUFValueType.INT64: np.dtype("<i8"),
    GGUFValueType.FLOAT64: np.dtype("<f8"),
}
#: the value type an array of each NumPy dtype is stored as
FROM_NUMPY: dict[np.dtype, GGUFValueType] = {
    np.dtype(np.uint8): GGUFValueType.UINT8,
    np.dtype(np.int8): GGUFValueType.INT8,
    np.dtype(np.uint16): GGUFValueType.UINT16,
    np.dtype(np.int16): GGUFValueType.INT16,
    np.dtype(np.uint32): GGUFValueType.UINT32,
    np.dtype(np.int32): GGUFValueType.INT32,
    np.dtype(np.float32): GGUFValueType.FLOAT32,
    np.dtype(np.bool_): GGUFValueType.BOOL,
    np.dtype(np.uint64): GGUFValueType.UINT64,
    np.dtype(np.int64): GGUFValueType.INT64,
    np.dtype(np.float64): GGUFValueType.FLOAT64,
}

__all__ = ["FROM_NUMPY", "NUMPY_DTYPES", "GGUFValueType"]
