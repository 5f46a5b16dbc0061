"""The ggml tensor types: ids, names, block sizes.

:class:`GGMLType` mirrors ggml's ``enum ggml_type``; the C++ type table is the single source of the
sizes, and a test checks this enum against it.

Example:
    >>> from ggquant import GGMLType, type_info
    >>> GGMLType.Q4_K.value
    12
    >>> type_info("q4_0").type_size
    18
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache

from . import _core
from .errors import UnsupportedTypeError


class GGMLType(enum.IntEnum):
    """ggml type ids as stored in GGUF tensor infos (retired ids are absent)."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41
    Q2_0 = 42


@dataclass(frozen=True)
class TypeInfo:
    """One row of the type table.

    Attributes:
        type: the :class:`GGMLType`.
        name: ggml's name, e.g. ``"q4_K"``.
        block_size: values per block.
        type_size: bytes per block.
        is_quantized: True for block formats.
        requires_imatrix: ggml refuses to quantize this type without importance weights.
        can_quantize / can_dequantize: whether ggquant implements the direction.
        simd_levels: the instruction sets with a quantizer for this type ("generic" is the reference).
    """

    type: GGMLType
    name: str
    block_size: int
    type_size: int
    is_quantized: bool
    requires_imatrix: bool
    can_quantize: bool
    can_dequantize: bool
    simd_levels: tuple[str, ...]

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.type_size / self.block_size


@lru_cache(maxsize=None)
def _table() -> dict[int, TypeInfo]:
    rows = {}
    for row in _core.type_table():
        if row["blck_size"] == 0:
            continue  # retired id
        rows[row["id"]] = TypeInfo(
            type=GGMLType(row["id"]),
            name=row["name"],
            block_size=row["blck_size"],
            type_size=row["type_size"],
            is_quantized=row["is_quantized"],
            requires_imatrix=row["requires_imatrix"],
            can_quantize=row["can_quantize"],
            can_dequantize=row["can_dequantize"],
            simd_levels=tuple(row["simd_levels"]),
        )
    return rows


def resolve_type(t: GGMLType | str | int) -> GGMLType:
    """Turn a type given as enum, name (any case: ``"q4_k"``, ``"Q4_K"``) or id into a :class:`GGMLType`.

    Raises:
        UnsupportedTypeError: for unknown names and retired or unknown ids.
    """
    if isinstance(t, GGMLType):
        return t
    if isinstance(t, str):
        key = t.strip().upper()
        if key in GGMLType.__members__:
            return GGMLType[key]
        names = ", ".join(m.name.lower() for m in GGMLType)
        raise UnsupportedTypeError(f"unknown ggml type {t!r}; known types: {names}")
    if isinstance(t, int) and not isinstance(t, bool):
        try:
            return GGMLType(t)
        except ValueError:
            raise UnsupportedTypeError(f"{t} is not a valid ggml type id (unknown or retired)") from None
    raise UnsupportedTypeError(f"expected a ggml type name, id or GGMLType, got {type(t).__name__}")


def type_info(t: GGMLType | str | int) -> TypeInfo:
    """The type-table row of ``t`` (name, block size, bytes per block, ...)."""
    return _table()[resolve_type(t)]


def all_types() -> list[TypeInfo]:
    """Every live ggml type, in id order."""
    return [_table()[k] for k in sorted(_table())]


__all__ = ["GGMLType", "TypeInfo", "resolve_type", "type_info", "all_types"]
