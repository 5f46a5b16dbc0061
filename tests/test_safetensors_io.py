"""safetensors I/O against the reference `safetensors` package: files cross-read both ways (NumPy
and torch frontends), byte equality with its writer, sharded checkpoints, atomic writes."""

from __future__ import annotations

import json
import os
import struct

import ml_dtypes
import numpy as np
import pytest
import safetensors
import safetensors.numpy as st_np
from helpers.gil import assert_calls_overlap
from hypothesis import given
from hypothesis import strategies as st

import ggquant
from ggquant import safetensors as gst

NUMPY_DTYPES = [
    np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.float16, np.int32, np.uint32,
    np.float32, np.float64, np.int64, np.uint64,
]  # fmt: skip


def random_array(rng, dtype, shape):
    dt = np.dtype(dtype)
    raw = rng.integers(0, 256, size=int(np.prod(shape, dtype=np.int64)) * dt.itemsize, dtype=np.uint8)
    a = raw.view(dt).reshape(shape) if dt != np.bool_ else (raw % 2).astype(np.bool_).reshape(shape)
    return a


def header_of(path) -> dict:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


# ---- byte equality with the reference writer


names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=8)
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3)


@given(
    st.dictionaries(names, st.tuples(st.sampled_from(NUMPY_DTYPES), shapes), max_size=6),
    st.none() | st.dictionaries(names, names, min_size=1, max_size=1),
    st.integers(0, 2**32 - 1),
)
def test_bytes_equal_reference_writer(tmp_path_factory, spec, metadata, seed):
    rng = np.random.default_rng(seed)
    spec.pop("__metadata__", None)
    tensors = {k: random_array(rng, dt, tuple(shape)) for k, (dt, shape) in spec.items()}
    if not tensors and metadata is not None:
        metadata = None  # the reference writes a malformed header for this case ({},"__metadata__":{...}})
    p = tmp_path_factory.mktemp("eq") / "g.safetensors"
    ggquant.save_file(tensors, p, metadata=metadata)
    assert p.read_bytes() == st_np.save(tensors, metadata=metadata)
    # dict order does not matter
    ggquant.save_file(dict(reversed(list(tensors.items()))), p, metadata=metadata)
    assert p.read_bytes() == st_np.save(tensors, metadata=metadata)


def test_empty_file_golden_bytes(tmp_path):
    p = tmp_path / "e.safetensors"
    ggquant.save_file({}, p)
    assert p.read_bytes() == b"\x08" + b"\0" * 7 + b"{}" + b" " * 6


def test_multi_key_metadata_round_trips(tmp_path):
    # the reference writes several metadata keys in hash order, so compare contents, not bytes
    md = {"z": "1", "a": "2", "format": "pt", "é\n\"": "\x01"}
    t = {"w": np.arange(10, dtype=np.float32)}
    p = tmp_path / "m.safetensors"
    ggquant.save_file(t, p, metadata=md)
    with safetensors.safe_open(p, "np") as f:
        assert f.metadata() == md
        assert (f.get_tensor("w") == t["w"]).all()
    assert list(ggquant.safe_open(p).metadata()) == list(md)  # insertion order kept


def test_big_endian_input_saved_little_endian(tmp_path):
    a = np.arange(6, dtype=">i4").reshape(2, 3)
    p = tmp_path / "be.safetensors"
    ggquant.save_file({"a": a}, p)
    assert p.read_bytes() == st_np.save({"a": a})
    assert (ggquant.safe_open(p)["a"] == a).all()


def test_non_contiguous_input(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    p = tmp_path / "nc.safetensors"
    ggquant.save_file({"a": a}, p)
    assert (st_np.load_file(p)["a"] == a).all()


def test_writer_rejects_bad_input(tmp_path):
    p = tmp_path / "x.safetensors"
    with pytest.raises(ggquant.SafetensorsError, match="not a numpy.ndarray"):
        ggquant.save_file({"a": [1, 2]}, p)
    with pytest.raises(ggquant.SafetensorsError, match="names must be str"):
        ggquant.save_file({1: np.zeros(1)}, p)
    with pytest.raises(ggquant.SafetensorsError, match="expected a dict"):
        ggquant.save_file([np.zeros(1)], p)
    with pytest.raises(ggquant.SafetensorsError, match="no safetensors equivalent"):
        ggquant.save_file({"a": np.zeros(1, np.complex128)}, p)
    with pytest.raises(ggquant.SafetensorsError, match="__metadata__"):
        ggquant.save_file({"__metadata__": np.zeros(1)}, p)
    with pytest.raises(ggquant.SafetensorsError, match="metadata keys and values must be str"):
        ggquant.save_file({"a": np.zeros(1)}, p, metadata={"k": 1})
    with pytest.raises(ggquant.SafetensorsError, match=r"\[safetensors_write\] tensor 'q': misaligned"):
        ggquant.SafetensorsWriter(p, {"q": ("F4", (3,))})
    with pytest.raises(ggquant.SafetensorsError, match=r"\[safetensors_write\] tensor 'q': validation overflow"):
        ggquant.SafetensorsWriter(p, {"q": ("F32", (2**62, 8))})
    with pytest.raises(ggquant.SafetensorsError, match="header too large"):
        ggquant.save_file({"a": np.zeros(1)}, p, metadata={"big": "x" * 100_000_000})
    assert not p.exists()
    assert os.listdir(tmp_path) == []


# ---- reading what the reference wrote (numpy frontend)


def test_read_reference_numpy_file(tmp_path, rng):
    tensors = {f"t{i}_{np.dtype(dt).name}": random_array(rng, dt, (3, i + 1)) for i, dt in enumerate(NUMPY_DTYPES)}
    tensors["scalar"] = np.array(3.5)
    tensors["empty"] = np.zeros((0, 5), np.float16)
    p = tmp_path / "ref.safetensors"
    st_np.save_file(tensors, p, metadata={"format": "np"})
    with ggquant.safe_open(p) as f, safetensors.safe_open(p, "np") as ref:
        assert f.keys() == list(ref.keys())
        assert f.metadata() == ref.metadata()
        for k in f.keys():
            a = f.get(k)
            assert a.dtype == tensors[k].dtype and a.shape == tensors[k].shape
            assert a.tobytes() == ref.get_tensor(k).tobytes()
            assert not a.flags.writeable


def test_views_are_zero_copy_and_outlive_the_file(tmp_path):
    t = {"a": np.arange(100, dtype=np.float32), "b": np.arange(50, dtype=np.int64)}
    p = tmp_path / "z.safetensors"
    ggquant.save_file(t, p)
    f = ggquant.safe_open(p)
    a, b = f.get("a"), f.get("b")
    addr = lambda x: x.__array_interface__["data"][0]  # noqa: E731
    # both views point into one mapping, at the offsets the header gives
    assert addr(a) - addr(b) == f.data_offsets("a")[0] - f.data_offsets("b")[0]
    assert not a.flags.owndata
    f.close()
    del f
    assert (a == t["a"]).all() and (b == t["b"]).all()
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1


def test_mapping_interface(tmp_path):
    p = tmp_path / "m.safetensors"
    ggquant.save_file({"b": np.zeros(2, np.uint8), "a": np.ones((1, 2), np.int8)}, p)
    f = ggquant.safe_open(p)
    assert list(f) == ["a", "b"] and len(f) == 2 and "a" in f and "c" not in f
    assert f.shape("a") == (1, 2) and f.dtype("a") == "I8" and f.nbytes("a") == 2
    assert f.get("c", None) is None
    with pytest.raises(KeyError, match="no tensor named 'c'"):
        f.get("c")
    with pytest.raises(KeyError):
        f["c"]
    with pytest.raises(KeyError):
        f.shape("c")
    f.close()
    with pytest.raises(ggquant.SafetensorsError, match="closed"):
        f.get("a")


def test_missing_file_is_io_error(tmp_path):
    with pytest.raises(ggquant.GGQuantIOError, match="cannot open"):
        ggquant.safe_open(tmp_path / "nope.safetensors")


# ---- extended dtypes, float conversion


F8_TYPES = {
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
    "F8_E8M0": ml_dtypes.float8_e8m0fnu,
    "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz,
    "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
}


@pytest.mark.parametrize("st_dtype", sorted(F8_TYPES))
def test_f8_all_values_to_float32(tmp_path, st_dtype):
    bits = np.arange(256, dtype=np.uint8)
    a = bits.view(F8_TYPES[st_dtype])
    p = tmp_path / "f8.safetensors"
    ggquant.save_file({"x": a}, p)
    with ggquant.safe_open(p) as f:
        assert f.dtype("x") == st_dtype
        assert f.get("x").dtype == a.dtype and f.get("x").view(np.uint8).tobytes() == bits.tobytes()
        np.testing.assert_array_equal(f.get_float32("x"), a.astype(np.float32))  # NaNs compare equal here


def test_bf16_f16_f64_int_to_float32(tmp_path, rng):
    bf = rng.integers(0, 2**16, 1000, dtype=np.uint16).view(ml_dtypes.bfloat16)
    t = {
        "bf": bf,
        "h": rng.integers(0, 2**16, 1000, dtype=np.uint16).view(np.float16),
        "d": rng.standard_normal(1000),
        "i": rng.integers(-1000, 1000, (10, 100), dtype=np.int32),
        "u": rng.integers(0, 255, 7, dtype=np.uint8),
        "b": rng.integers(0, 2, 5).astype(bool),
    }
    p = tmp_path / "c.safetensors"
    ggquant.save_file(t, p)
    with ggquant.safe_open(p) as f:
        for k, v in t.items():
            np.testing.assert_array_equal(f.get_float32(k), v.astype(np.float32), err_msg=k)
            assert f.get_float32(k).shape == v.shape


def test_sub_byte_types_read_as_packed_bytes(tmp_path):
    header = json.dumps({"q": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}}).encode()
    p = tmp_path / "f4.safetensors"
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\x12\x34\x56")
    with ggquant.safe_open(p) as f:
        assert f.get("q").tobytes() == b"\x12\x34\x56" and f.shape("q") == (2, 3)
        with pytest.raises(ggquant.UnsupportedTypeError, match="F4"):
            f.get_float32("q")
    # and written back from the packed bytes identically
    with ggquant.SafetensorsWriter(tmp_path / "f4b.safetensors", {"q": ("F4", (2, 3))}) as w:
        w.write("q", np.frombuffer(b"\x12\x34\x56", np.uint8))
    image = (tmp_path / "f4b.safetensors").read_bytes()
    assert image.endswith(b"\x12\x34\x56")
    assert safetensors.deserialize(image) == [("q", {"dtype": "F4", "shape": [2, 3], "data": bytearray(b"\x12\x34\x56")})]


# ---- torch frontend, both ways

TORCH_DTYPES = [
    "bool", "uint8", "int8", "int16", "uint16", "float16", "bfloat16", "int32", "uint32", "float32",
    "float64", "int64", "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu",
]  # fmt: skip


def torch_tensors(torch, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i, name in enumerate(TORCH_DTYPES):
        dt = getattr(torch, name)
        shape = (3, i + 1)
        n = 3 * (i + 1) * dt.itemsize
        raw = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=g)
        if dt == torch.bool:
            raw = raw % 2
        out[f"t_{name}"] = raw.view(dt).reshape(shape)
    out["scalar"] = torch.tensor(2.5, dtype=torch.bfloat16)
    out["empty"] = torch.zeros((4, 0), dtype=torch.float16)
    return out


def torch_bits(t):
    return t.contiguous().view(-1).view(__import__("torch").uint8).numpy().tobytes()


def test_read_reference_torch_file(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch as st_pt

    t = torch_tensors(torch)
    p = tmp_path / "pt.safetensors"
    st_pt.save_file(t, p, metadata={"format": "pt"})
    with ggquant.safe_open(p) as f:
        assert f.keys() == sorted(t) and f.metadata() == {"format": "pt"}
        for k, v in t.items():
            assert f.shape(k) == tuple(v.shape)
            assert f.get(k).tobytes() == torch_bits(v)
            if v.dtype.is_floating_point:
                np.testing.assert_array_equal(f.get_float32(k), v.float().numpy(), err_msg=k)


def test_write_for_reference_torch_reader_byte_identical(tmp_path):
    torch = pytest.importorskip("torch")
    import safetensors.torch as st_pt

    t = torch_tensors(torch, seed=3)
    np_dtype = {
        "bfloat16": ml_dtypes.bfloat16, "float8_e4m3fn": ml_dtypes.float8_e4m3fn,
        "float8_e5m2": ml_dtypes.float8_e5m2, "float8_e8m0fnu": ml_dtypes.float8_e8m0fnu,
    }  # fmt: skip
    arrays = {}
    for k, v in t.items():
        name = str(v.dtype).removeprefix("torch.")
        dt = np_dtype.get(name, None) or np.dtype(name if name != "bool" else np.bool_)
        arrays[k] = np.frombuffer(torch_bits(v), np.uint8).view(dt).reshape(tuple(v.shape))
    p = tmp_path / "g.safetensors"
    ggquant.save_file(arrays, p, metadata={"format": "pt"})
    assert p.read_bytes() == st_pt.save(t, metadata={"format": "pt"})
    back = st_pt.load_file(p)
    for k, v in t.items():
        assert back[k].dtype == v.dtype and torch_bits(back[k]) == torch_bits(v)


# ---- streaming writer


def test_streaming_writer_order_and_pending(tmp_path):
    t = {"c": np.zeros(3, np.float64), "a": np.ones(2, np.float32), "b": np.arange(4, dtype=np.uint8)}
    p = tmp_path / "s.safetensors"
    with ggquant.SafetensorsWriter(p, {k: (v.dtype, v.shape) for k, v in t.items()}) as w:
        assert w.order == ["c", "a", "b"]  # F64, F32, U8: alignment descending
        for k in ["b", "a", "c"]:  # any order: early tensors wait for their turn
            w.write(k, t[k])
        assert not p.exists()
    assert p.read_bytes() == st_np.save(t)


def test_tensor_buffers_fill_the_file_in_place(tmp_path, rng):
    # sizes that leave tensors across page boundaries; one mixed with a plain write
    t = {"w": random_array(rng, np.uint32, (700, 9)), "s": random_array(rng, np.float16, (1500, 3)),
         "n": random_array(rng, np.float32, (5,)), "e": np.zeros((0, 4), np.float32)}
    p = tmp_path / "s.safetensors"
    with ggquant.SafetensorsWriter(p, {k: (v.dtype, v.shape) for k, v in t.items()}) as w:
        with pytest.raises(ggquant.SafetensorsError, match="'x' was not declared"):
            w.tensor_buffer("x")
        views = {}
        for k in ("n", "e", "s", "w"):
            buf = w.tensor_buffer(k)
            assert buf is not None and buf.dtype == np.uint8 and buf.nbytes == t[k].nbytes
            views[k] = buf.view(t[k].dtype).reshape(t[k].shape)
            views[k][...] = t[k]
        for k in ("n", "s", "e"):  # early ones wait for their turn, their pages already released
            w.write(k, views[k])
        w.write("w", t["w"])  # a caller's array is copied into place
        assert not p.exists()
    assert p.read_bytes() == st_np.save(t)
    assert views["s"].tobytes() == t["s"].tobytes()  # a view past the writer reads the file, no crash
    # mapped after bytes were written (and buffered) the plain way, as convert_mlx does when a kept
    # tensor comes before the first quantized one
    p2 = tmp_path / "late.safetensors"
    with ggquant.SafetensorsWriter(p2, {k: (v.dtype, v.shape) for k, v in t.items()}) as w:
        first, *rest = w.order
        w.write(first, t[first])
        for k in rest:
            buf = w.tensor_buffer(k)
            assert buf is not None
            buf.view(t[k].dtype).reshape(t[k].shape)[...] = t[k]
            w.write(k, buf.view(t[k].dtype).reshape(t[k].shape))
    assert p2.read_bytes() == st_np.save(t)


def test_streaming_writer_checks_declarations(tmp_path):
    p = tmp_path / "s.safetensors"
    w = ggquant.SafetensorsWriter(p, {"a": ("F32", (2,)), "b": ("BF16", (1,))})
    with pytest.raises(ggquant.SafetensorsError, match="declared F32"):
        w.write("a", np.zeros(2, np.float64))
    with pytest.raises(ggquant.SafetensorsError, match="shape"):
        w.write("a", np.zeros(3, np.float32))
    with pytest.raises(ggquant.SafetensorsError, match="not declared"):
        w.write("zz", np.zeros(3, np.float32))
    w.write("a", np.zeros(2, np.float32))
    with pytest.raises(ggquant.SafetensorsError, match="already written"):
        w.write("a", np.zeros(2, np.float32))
    with pytest.raises(ggquant.SafetensorsError, match=r"1 tensor\(s\) not written, next is 'b'"):
        w.commit()
    assert not p.exists()
    w.write("b", np.zeros(1, np.uint16))  # raw BF16 bits are accepted
    w.commit()
    assert safetensors.safe_open(p, "np").keys() == ["a", "b"]


def test_failed_write_leaves_nothing_and_keeps_old_file(tmp_path):
    p = tmp_path / "keep.safetensors"
    ggquant.save_file({"old": np.zeros(1, np.uint8)}, p)
    before = p.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with ggquant.SafetensorsWriter(p, {"a": ("U8", (1,)), "b": ("U8", (1,))}) as w:
            w.write("a", np.zeros(1, np.uint8))
            raise RuntimeError("boom")
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.safetensors"]


# ---- sharded checkpoints


def test_save_sharded_matches_transformers_layout(tmp_path, rng):
    t = {f"layer.{i}.w": rng.standard_normal((16, 16)).astype(np.float32) for i in range(5)}
    t["emb"] = rng.standard_normal(100).astype(np.float16)
    files = ggquant.save_sharded(t, tmp_path, max_shard_size=2100, metadata={"format": "pt"})
    n = len(files) - 1
    assert n == 3 and files[-1] == "model.safetensors.index.json"
    assert sorted(os.listdir(tmp_path)) == sorted(files)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": sum(a.nbytes for a in t.values())}
    assert set(index["weight_map"]) == set(t)
    # packed in dict order, a new shard when the next tensor would pass the limit (2 x 1024 bytes fit)
    assert [index["weight_map"][k][6:11] for k in t] == ["00001", "00001", "00002", "00002", "00003", "00003"]
    for i in range(n):
        name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        with safetensors.safe_open(tmp_path / name, "np") as f:
            assert f.metadata() == {"format": "pt"}
            for k in f.keys():
                assert index["weight_map"][k] == name
                assert (f.get_tensor(k) == t[k]).all()
    ck = ggquant.load_checkpoint(tmp_path)
    assert ck.keys() == sorted(t) and ck.metadata() == index["metadata"]
    for k, v in t.items():
        assert (ck[k] == v).all() and ck.shape(k) == v.shape
        np.testing.assert_array_equal(ck.get_float32(k), v.astype(np.float32))


def test_save_sharded_single_shard_is_model_safetensors(tmp_path):
    t = {"a": np.zeros(3, np.float32)}
    assert ggquant.save_sharded(t, tmp_path) == ["model.safetensors"]
    assert (tmp_path / "model.safetensors").read_bytes() == st_np.save(t)
    assert ggquant.load_checkpoint(tmp_path).keys() == ["a"]
    assert ggquant.load_checkpoint(tmp_path / "model.safetensors").keys() == ["a"]


def test_read_sharded_checkpoint_written_by_reference(tmp_path):
    shards = {
        "model-00001-of-00002.safetensors": {"a": np.ones(4, np.float32)},
        "model-00002-of-00002.safetensors": {"b": np.zeros((2, 2), np.int8), "c": np.array(1.0)},
    }
    wm = {}
    for fname, t in shards.items():
        st_np.save_file(t, tmp_path / fname)
        wm.update({k: fname for k in t})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 29}, "weight_map": wm}))
    ck = ggquant.load_checkpoint(tmp_path / "model.safetensors.index.json")
    assert ck.keys() == ["a", "b", "c"] and ck.shard_of("c") == "model-00002-of-00002.safetensors"
    assert (ck["b"] == 0).all() and ck["c"] == 1.0 and ck.dtype("c") == "F64"


def write_index(tmp_path, wm):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))


def test_index_must_agree_with_shards(tmp_path):
    st_np.save_file({"a": np.ones(1), "b": np.ones(1)}, tmp_path / "s1.safetensors")
    write_index(tmp_path, {"a": "s1.safetensors"})
    with pytest.raises(ggquant.SafetensorsError, match=r"holds \['b'\] that weight_map does not map"):
        ggquant.load_checkpoint(tmp_path)
    write_index(tmp_path, {"a": "s1.safetensors", "b": "s1.safetensors", "x": "s1.safetensors"})
    with pytest.raises(ggquant.SafetensorsError, match=r"names \['x'\] that the shard does not hold"):
        ggquant.load_checkpoint(tmp_path)
    write_index(tmp_path, {"a": "s1.safetensors", "b": "../s1.safetensors"})
    with pytest.raises(ggquant.SafetensorsError, match="relative path inside the folder"):
        ggquant.load_checkpoint(tmp_path)
    write_index(tmp_path, {"a": "s1.safetensors", "b": "missing.safetensors"})
    with pytest.raises(ggquant.GGQuantIOError, match="missing.safetensors"):
        ggquant.load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"a": "s1.safetensors", "a": "s1.safetensors"}}')
    with pytest.raises(ggquant.SafetensorsError, match="duplicate key 'a'"):
        ggquant.load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_bytes(b'{"weight_map": {"\xff": "s1.safetensors"}}')
    with pytest.raises(ggquant.SafetensorsError, match="not valid UTF-8"):
        ggquant.load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"a": NaN}}')
    with pytest.raises(ggquant.SafetensorsError, match="NaN is not valid JSON"):
        ggquant.load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": [')
    with pytest.raises(ggquant.SafetensorsError, match="not valid JSON"):
        ggquant.load_checkpoint(tmp_path)


def test_save_sharded_is_atomic_as_a_set(tmp_path, monkeypatch):
    t = {f"w{i}": np.full(100, i, np.float32) for i in range(4)}
    real = gst._bytes_view
    calls = []

    def failing(a):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real(a)

    monkeypatch.setattr(gst, "_bytes_view", failing)
    with pytest.raises(ggquant.GGQuantIOError, match="simulated"):  # OS failures are ggquant errors too
        ggquant.save_sharded(t, tmp_path, max_shard_size=400)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(gst, "_bytes_view", real)
    assert len(ggquant.save_sharded(t, tmp_path, max_shard_size=400)) == 5


def test_parse_size():
    assert gst.parse_size("5GB") == 5 * 10**9 and gst.parse_size("1.5MiB") == 3 * 2**19
    with pytest.raises(ggquant.SafetensorsError, match="cannot read the size"):
        gst.parse_size("5 parsecs")
    with pytest.raises(ggquant.SafetensorsError, match="positive"):
        gst.parse_size(0)


def test_float32_conversion_releases_the_gil(tmp_path):
    """Two Python threads converting at the same time: their call windows overlap."""
    p = tmp_path / "big.safetensors"
    ggquant.save_file({"x": np.ones(2**23, ml_dtypes.bfloat16)}, p)
    f = ggquant.safe_open(p)
    f.get_float32("x")  # warm up (page in)

    def work():
        for _ in range(3):
            f._file().to_float32("x", 1)

    assert_calls_overlap(work)


def test_without_ml_dtypes_bf16_and_f8_are_raw_bits(tmp_path, monkeypatch):
    bf = np.array([1.5, -2.0], ml_dtypes.bfloat16)
    f8 = np.array([0.5, 448.0], ml_dtypes.float8_e4m3fn)
    p = tmp_path / "raw.safetensors"
    ggquant.save_file({"bf": bf, "f8": f8}, p)
    monkeypatch.setattr(gst, "_ml_dtypes", None)
    with ggquant.safe_open(p) as f:
        assert f.get("bf").dtype == np.uint16 and (f.get("bf") == bf.view(np.uint16)).all()
        assert f.get("f8").dtype == np.uint8 and (f.get("f8") == f8.view(np.uint8)).all()
        np.testing.assert_array_equal(f.get_float32("bf"), [1.5, -2.0])
        np.testing.assert_array_equal(f.get_float32("f8"), [0.5, 448.0])
