"""The one registry of GGUF value types (ggquant.gguf_values) against the C++ enum and gguf-py, and the
writer's own header size against the files it writes."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import ggquant
import numpy as np
import pytest
from ggquant.gguf_values import FROM_NUMPY, NUMPY_DTYPES, GGUFValueType

ROOT = Path(__file__).resolve().parent.parent


def test_ids_match_the_cpp_enum():
    text = (ROOT / "src" / "io" / "gguf.h").read_text()
    cpp = {m[1]: int(m[2]) for m in re.finditer(r"GGUF_TYPE_(\w+) = (\d+)", text) if m[1] != "COUNT"}
    assert cpp == {t.name: int(t) for t in GGUFValueType}


def test_ids_and_sizes_match_gguf_py():
    gguf = pytest.importorskip("gguf")
    assert {t.name: int(t) for t in gguf.GGUFValueType} == {t.name: int(t) for t in GGUFValueType}
    packing = gguf.GGUFWriter._simple_value_packing
    for t in GGUFValueType:
        want = struct.calcsize("<" + packing[gguf.GGUFValueType(int(t))]) if int(t) in {int(k) for k in packing} else 0
        assert t.nbytes == want, t.name
    for dt, t in FROM_NUMPY.items():
        assert NUMPY_DTYPES[t].itemsize == dt.itemsize and NUMPY_DTYPES[t].kind in (dt.kind, "u"), t.name


def test_ggquant_gguf_reexports_the_registry():
    assert ggquant.gguf.GGUFValueType is GGUFValueType


@pytest.mark.parametrize(("alignment", "split"), [(32, None), (64, None), (32, 2), (128, 1)])
def test_writer_header_size_is_where_the_data_starts(tmp_path, alignment, split):
    path = tmp_path / "h.gguf"
    w = ggquant.gguf.GGUFWriter(path, alignment=alignment, split_max_tensors=split)
    w.add_kv("general.architecture", "llama")
    w.add_kv("a.u8", 7, GGUFValueType.UINT8)
    w.add_kv("a.f64", 0.5, GGUFValueType.FLOAT64)
    w.add_kv("a.bool", True)
    w.add_kv("a.strs", ["x", "yz", ""], GGUFValueType.ARRAY, GGUFValueType.STRING)
    w.add_kv("a.ints", np.arange(5, dtype=np.int16))
    names = ["t0", "tensor.one", "blk.2.w"]
    for i, n in enumerate(names):
        w.add_tensor_info(n, shape=(i + 1, 32), type="f32")
    sizes = w.header_sizes()
    paths = w.shard_paths()
    for i, n in enumerate(names):
        w.write_tensor(n, np.zeros((i + 1, 32), np.float32))
    w.close()
    assert len(sizes) == len(paths) == (1 if split is None else -(-len(names) // split))
    for p, size in zip(paths, sizes):
        r = ggquant.gguf.GGUFReader(p)
        assert r.tensors[0].offset == size, p
        r.close()
