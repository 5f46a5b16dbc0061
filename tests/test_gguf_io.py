"""GGUF reader/writer: interop with gguf-py both ways, byte-identical round trips, splits, atomicity."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import gguf
import numpy as np
import pytest

import ggquant
from ggquant import _core
from ggquant.gguf import GGUFReader, GGUFValueType, GGUFWriter, read_gguf_split

VT = GGUFValueType


def make_gguf_py_file(path, rng, alignment=None):
    """A file written by gguf-py with every value type, arrays, and tensors of several types."""
    w = gguf.GGUFWriter(str(path), "llama")
    if alignment:
        w.add_custom_alignment(alignment)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -5)
    w.add_uint16("t.u16", 65000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4_000_000_000)
    w.add_int32("t.i32", -2_000_000_000)
    w.add_float32("t.f32", 1.5)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓")
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", 2.0 / 3.0)
    w.add_array("t.arr_str", ["a", "", "ü"])
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_f32", [0.5, 0.25])
    w.add_array("t.arr_bool", [True, False])
    x = rng.standard_normal((4, 64), dtype=np.float32)
    w.add_tensor("a.f32", x)
    w.add_tensor("b.f16", x.astype(np.float16))
    q = gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("c.q8_0", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("d.i32", np.arange(7, dtype=np.int32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def copy_with_ggquant(src: GGUFReader, dst):
    with GGUFWriter(dst, alignment=src.alignment) as w:
        for key, value in src.metadata.items():
            vt, et = src.kv_types[key]
            w.add_kv(key, value, vt, et)
        for t in src.tensors:
            w.add_tensor_info(t.name, t.shape, t.type)
        for t in src.tensors:
            w.write_tensor(t.name, t.data)


@pytest.mark.parametrize("alignment", [None, 64])
def test_gguf_py_file_reads_identically_and_round_trips(tmp_path, rng, alignment):
    path = tmp_path / "ref.gguf"
    make_gguf_py_file(path, rng, alignment)
    ref = gguf.GGUFReader(str(path))
    ours = GGUFReader(path)
    ref_fields = {k: f for k, f in ref.fields.items() if not k.startswith("GGUF.")}
    assert list(ours.metadata) == list(ref_fields)
    for key, f in ref_fields.items():
        vt, et = ours.kv_types[key]
        assert int(vt) == int(f.types[0]), key
        if vt == VT.ARRAY:
            assert int(et) == int(f.types[1]), key
        expect = f.contents()
        got = ours.metadata[key]
        if isinstance(got, np.ndarray):
            got = got.tolist()
        assert got == pytest.approx(expect) if isinstance(expect, float) else got == expect, key
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors]
    for a, b in zip(ours.tensors, ref.tensors):
        assert int(a.type) == int(b.tensor_type)
        assert a.nbytes == b.n_bytes and a.offset == b.data_offset
        assert a.data.tobytes() == np.asarray(b.data).tobytes()
    # read -> write reproduces the file byte for byte
    out = tmp_path / "copy.gguf"
    copy_with_ggquant(ours, out)
    assert out.read_bytes() == path.read_bytes()


def test_ggquant_file_reads_in_gguf_py(tmp_path, rng):
    x = rng.standard_normal((3, 256), dtype=np.float32)
    path = tmp_path / "ours.gguf"
    with GGUFWriter(path) as w:
        w.add_kv("general.architecture", "llama")
        w.add_kv("llama.block_count", 2, VT.UINT32)
        w.add_kv("llama.rope.freq_base", 10000.0, VT.FLOAT32)
        w.add_kv("tokenizer.ggml.tokens", ["<s>", "a", "b"], VT.ARRAY, VT.STRING)
        w.add_kv("tokenizer.ggml.token_type", np.array([3, 1, 1], np.int32), VT.ARRAY, VT.INT32)
        w.add_kv("tokenizer.ggml.scores", np.array([0.0, -1.0, -2.0], np.float32))
        w.add_kv("tokenizer.ggml.add_bos_token", True)
        for t in ["f32", "f16", "q4_0", "q8_0"]:
            w.add_tensor_info(f"w.{t}", x.shape, t)
        for t in ["f32", "f16", "q4_0", "q8_0"]:
            w.write_tensor(f"w.{t}", ggquant.quantize(x, t))
    r = gguf.GGUFReader(str(path))
    assert r.fields["llama.block_count"].contents() == 2
    assert r.fields["llama.block_count"].types == [gguf.GGUFValueType.UINT32]
    assert r.fields["tokenizer.ggml.tokens"].contents() == ["<s>", "a", "b"]
    assert r.fields["tokenizer.ggml.token_type"].types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32]
    assert r.fields["tokenizer.ggml.add_bos_token"].contents() is True
    for t in ["f32", "f16", "q4_0", "q8_0"]:
        rt = next(rt for rt in r.tensors if rt.name == f"w.{t}")
        assert rt.tensor_type.name == t.upper()
        assert np.asarray(rt.data).tobytes() == ggquant.quantize(x, t).tobytes()
        back = gguf.quants.dequantize(np.asarray(rt.data), rt.tensor_type)
        assert back.shape == x.shape


def test_reader_views_are_zero_copy_and_typed(tmp_path, rng):
    path = tmp_path / "v.gguf"
    make_gguf_py_file(path, rng)
    r = GGUFReader(path)
    t = r.tensor("a.f32")
    assert t.data.dtype == np.float32 and t.data.shape == (4, 64)
    assert not t.data.flags.owndata and not t.data.flags.writeable
    assert r.tensor("c.q8_0").data.shape == (4, 68)
    data = t.data
    r.close()
    assert np.isfinite(data).all()  # the view keeps the mapping alive after close()


def test_split_write_and_read(tmp_path, rng):
    x = rng.standard_normal((8, 64), dtype=np.float32)
    path = tmp_path / "m.gguf"
    with GGUFWriter(path, split_max_tensors=2) as w:
        w.add_kv("general.architecture", "llama")
        for i in range(5):
            w.add_tensor_info(f"t{i}", x.shape, "q8_0")
        for i in range(5):
            w.write_tensor(f"t{i}", ggquant.quantize(x * i, "q8_0"))
    names = sorted(os.listdir(tmp_path))
    assert names == [f"m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    first = gguf.GGUFReader(str(tmp_path / names[0]))
    assert first.fields["split.count"].contents() == 3
    assert first.fields["split.count"].types == [gguf.GGUFValueType.UINT16]
    assert first.fields["split.tensors.count"].types == [gguf.GGUFValueType.INT32]
    second = GGUFReader(tmp_path / names[1])
    assert set(second.metadata) == {"split.no", "split.count", "split.tensors.count"}
    model = read_gguf_split(tmp_path / names[0])
    assert [t.name for t in model.tensors] == [f"t{i}" for i in range(5)]
    assert model.tensor("t3").data.tobytes() == ggquant.quantize(x * 3, "q8_0").tobytes()
    os.unlink(tmp_path / names[2])
    with pytest.raises(ggquant.GGUFError, match="missing shard"):
        read_gguf_split(tmp_path / names[0])


def test_split_by_size(tmp_path):
    x = np.zeros((4, 256), np.float32)  # 4096 bytes each
    with GGUFWriter(tmp_path / "s.gguf", split_max_size=9000) as w:
        for i in range(5):
            w.add_tensor_info(f"t{i}", x.shape, "f32")
        assert len(w.shard_paths()) == 3
        for i in range(5):
            w.write_tensor(f"t{i}", x)
    assert len(os.listdir(tmp_path)) == 3


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "fail.gguf"
    with pytest.raises(RuntimeError):
        with GGUFWriter(path) as w:
            w.add_tensor_info("a", (2, 32), "f32")
            w.add_tensor_info("b", (2, 32), "f32")
            w.write_tensor("a", np.zeros((2, 32), np.float32))
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ggquant.GGUFError, match="'b' is missing"):
        with GGUFWriter(path) as w:
            w.add_tensor_info("a", (2, 32), "f32")
            w.add_tensor_info("b", (2, 32), "f32")
            w.write_tensor("a", np.zeros((2, 32), np.float32))
    assert os.listdir(tmp_path) == []


def _declared(path, x, n, **split):
    """A writer with metadata and ``n`` Q8_0 tensors shaped like ``x`` (and one F32 of 3 rows) declared."""
    w = GGUFWriter(path, **split)
    w.add_kv("general.architecture", "llama")
    for i in range(n):
        w.add_tensor_info(f"t{i}", x.shape, "q8_0")
    w.add_tensor_info("norm", (3, 32), "f32")
    return w


@pytest.mark.parametrize("split", [{}, {"split_max_tensors": 2}])
def test_tensor_buffers_fill_the_file_in_place(tmp_path, rng, split):
    x = rng.standard_normal((300, 64), dtype=np.float32)  # 300 * 68 bytes: tensors and pages misaligned
    norm = rng.standard_normal((3, 32), dtype=np.float32)
    with _declared(tmp_path / "copy.gguf", x, 5, **split) as w:
        for i in range(5):
            w.write_tensor(f"t{i}", ggquant.quantize(x * i, "q8_0"))
        w.write_tensor("norm", norm)
    os.mkdir(tmp_path / "inplace")
    with _declared(tmp_path / "inplace" / "copy.gguf", x, 5, **split) as w:
        bufs = {f"t{i}": w.tensor_buffer(f"t{i}") for i in reversed(range(5))}  # filled in any order
        assert all(b is not None and b.flags.writeable and b.size == 300 * 68 for b in bufs.values())
        for i in reversed(range(5)):
            _core.prefault_for_write(bufs[f"t{i}"])  # as the converter's writer thread does ahead of the kernels
            bufs[f"t{i}"][:] = ggquant.quantize(x * i, "q8_0").reshape(-1)
        _core.prefault_for_write(bufs["t4"])  # faulting in pages already written keeps them
        w.write_tensor("t0", bufs["t0"])
        w.write_tensor("t1", ggquant.quantize(x, "q8_0"))  # a buffer of the caller's is copied into place
        for i in (2, 3, 4):
            w.write_tensor(f"t{i}", bufs[f"t{i}"])
        w.write_tensor("norm", norm)
    names = sorted(n for n in os.listdir(tmp_path) if n.endswith(".gguf"))
    assert sorted(os.listdir(tmp_path / "inplace")) == names
    for n in names:
        assert (tmp_path / "inplace" / n).read_bytes() == (tmp_path / n).read_bytes()
    # a view kept past close reads the committed file and does not crash
    assert bufs["t4"].tobytes() == ggquant.quantize(x * 4, "q8_0").tobytes()


def test_tensor_buffer_abort_and_errors(tmp_path, rng):
    x = rng.standard_normal((64, 64), dtype=np.float32)
    w = _declared(tmp_path / "a.gguf", x, 2)
    with pytest.raises(ggquant.GGUFError, match="'nope' was not declared"):
        w.tensor_buffer("nope")
    b = w.tensor_buffer("t1")
    b[:] = 7
    w.write_tensor("t0", ggquant.quantize(x, "q8_0"))
    w.abort()
    assert os.listdir(tmp_path) == []
    assert int(b[0]) == 7  # the mapping lives as long as the view, the file is gone
    with pytest.raises(ggquant.GGQuantIOError, match="closed"):
        w.tensor_buffer("t0")


_FULL_DISK = """
import os, resource, sys
import ggquant
from ggquant.gguf import GGUFWriter
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # Python ignores SIGXFSZ: writes get EFBIG
w = GGUFWriter(os.path.join(sys.argv[1], "big.gguf"))
w.add_tensor_info("w", (1024, 1024), "f32")
try:
    w.tensor_buffer("w")
except ggquant.GGQuantIOError as e:
    print("refused:", e)
"""


def test_tensor_buffer_without_room_fails_cleanly(tmp_path):
    p = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert re.search(r"refused: .*cannot preallocate 4194\d{3} bytes for '.*big\.gguf'", p.stdout), p.stdout
    assert os.listdir(tmp_path) == []


def test_writer_rejects_bad_input(tmp_path):
    w = GGUFWriter(tmp_path / "x.gguf")
    with pytest.raises(ggquant.GGUFError, match="63 bytes"):
        w.add_tensor_info("n" * 64, (32,), "f32")
    w.add_kv("k", 1, VT.UINT8)
    with pytest.raises(ggquant.GGUFError, match="duplicate metadata key"):
        w.add_kv("k", 2, VT.UINT8)
    with pytest.raises(ggquant.GGUFError, match="does not fit UINT8"):
        w.add_kv("k2", 300, VT.UINT8)
    with pytest.raises(ggquant.GGUFError, match="arrays of arrays"):
        w.add_kv("k3", [[1]], VT.ARRAY, VT.ARRAY)
    with pytest.raises(ggquant.GGUFError, match="block size 32"):
        w.add_tensor_info("q", (2, 40), "q4_0")
    w.add_tensor_info("a", (2, 32), "f32")
    with pytest.raises(ggquant.GGUFError, match="needs 256 bytes"):
        w.write_tensor("a", np.zeros(3, np.float32))
    w.abort()
    assert os.listdir(tmp_path) == []
