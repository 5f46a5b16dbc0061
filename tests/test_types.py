"""The type table: Python enum vs C++ table vs gguf-py's constants; sizes and shape arithmetic."""

from __future__ import annotations

import gguf
import pytest

import ggquant
from ggquant import GGMLType, _core

RETIRED = {4, 5, 31, 32, 33, 36, 37, 38}


def test_enum_matches_cpp_table():
    table = _core.type_table()
    assert len(table) == 43, "ggml's GGML_TYPE_COUNT"
    live = {row["id"]: row for row in table if row["blck_size"] != 0}
    assert set(live) == {t.value for t in GGMLType}
    for t in GGMLType:
        assert live[t.value]["name"].upper() == t.name, t
    for row in table:
        if row["id"] in RETIRED:
            assert row["blck_size"] == 0 and row["name"] == "DEPRECATED"


def test_sizes_match_gguf_py():
    for t in GGMLType:
        try:
            g = gguf.GGMLQuantizationType(t.value)
        except ValueError:
            continue  # newer than gguf 0.19.0
        assert g.name == t.name
        if t == GGMLType.Q8_1:
            continue  # gguf-py's Q8_1 size is stale (40 instead of ggml's 36)
        blck, size = gguf.GGML_QUANT_SIZES[g]
        info = ggquant.type_info(t)
        assert (info.block_size, info.type_size) == (blck, size), t


@pytest.mark.parametrize("bad", [4, 5, 31, 36, 43, -1, 1000])
def test_retired_and_unknown_ids_rejected(bad):
    with pytest.raises(ggquant.UnsupportedTypeError):
        ggquant.resolve_type(bad)
    with pytest.raises(ggquant.UnsupportedTypeError, match="not a valid ggml type"):
        _core.row_size(bad, 32)


def test_resolve_names_case_insensitive():
    assert ggquant.resolve_type("q4_k") is GGMLType.Q4_K
    assert ggquant.resolve_type("Q8_0") is GGMLType.Q8_0
    assert ggquant.resolve_type(8) is GGMLType.Q8_0
    with pytest.raises(ggquant.UnsupportedTypeError, match="q4_0"):  # lists the known names
        ggquant.resolve_type("q4_9")


def test_row_size_and_byte_shapes():
    assert ggquant.row_size("q4_0", 4096) == 4096 // 32 * 18
    assert ggquant.row_size("f16", 7) == 14
    with pytest.raises(ggquant.ShapeError, match="block size 32"):
        ggquant.row_size("q8_0", 100)
    for t in ["q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_K", "bf16"]:
        shape = (3, 5, 512)
        bshape = ggquant.quant_shape_to_byte_shape(shape, t)
        assert bshape[:-1] == shape[:-1]
        assert bshape[-1] == ggquant.row_size(t, 512)
        assert ggquant.quant_shape_from_byte_shape(bshape, t) == shape
        g = gguf.GGMLQuantizationType[t.upper()]
        assert bshape == tuple(gguf.quant_shape_to_byte_shape(shape, g))


def test_bits_per_weight():
    assert ggquant.type_info("q4_0").bits_per_weight == 4.5
    assert ggquant.type_info("q4_K").bits_per_weight == 4.5
    assert ggquant.type_info("q6_K").bits_per_weight == 6.5625
