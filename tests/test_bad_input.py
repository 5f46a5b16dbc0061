"""Regression tests for the holes of issue 14 (untrusted input and faults), one block per item,
and a sweep of mutated files and bad arguments over every public entry point: anything raised
must be a GGQuantError subclass."""

from __future__ import annotations

import ctypes
import json
import math
import os
import random
import stat
import struct
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import ggquant
import ggquant.mlx as gm
from ggquant import _core
from ggquant.fileio import check_not_an_input, check_size_unchanged, remove_stale_temporaries, sigterm_as_interrupt
from ggquant.gguf import GGUFReader, GGUFValueType, GGUFWriter, read_gguf_split
from ggquant.safetensors import SafetensorsWriter, parse_size
from test_gguf_untrusted import ARR, STR, U32, gguf_bytes, kv, s, tinfo

F32_ID = 0


def ggml_accepts(path: str) -> bool | None:
    """ggml's own verdict on a GGUF file (gguf_init_from_file), or None when the oracle is missing."""
    sys.path.insert(0, os.path.dirname(__file__))
    from oracle.ggml_oracle import find_library

    lib_path, _ = find_library()
    if lib_path is None:
        return None
    lib = ctypes.CDLL(str(lib_path))

    class Params(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]

    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, Params]
    lib.gguf_free.argtypes = [ctypes.c_void_p]
    ctx = lib.gguf_init_from_file(os.fsencode(path), Params(True, None))
    if ctx:
        lib.gguf_free(ctx)
    return bool(ctx)


def write(tmp_path, name: str, data: bytes) -> str:
    p = os.path.join(tmp_path, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


# ---- 1. metadata and no tensors: the 24-byte header and KVs, no padding (as ggml writes it)


def test_metadata_only_gguf_without_padding_is_valid(tmp_path):
    data = b"GGUF" + struct.pack("<Iqq", 3, 0, 1) + kv("general.architecture", STR, s("llama"))
    assert len(data) % 32 != 0
    p = write(tmp_path, "meta.gguf", data)
    r = GGUFReader(p)
    assert r.metadata["general.architecture"] == "llama" and len(r.tensors) == 0
    assert r._h.data_start == len(data)  # ggml: the data section starts right after the header
    empty = write(tmp_path, "empty.gguf", b"GGUF" + struct.pack("<Iqq", 3, 0, 0))
    assert len(GGUFReader(empty).metadata) == 0
    if ggml_accepts(p) is not None:
        assert ggml_accepts(p) and ggml_accepts(empty)


# ---- 2. names that are not UTF-8, or long multi-byte names: a GGUFError, never UnicodeDecodeError


@pytest.mark.parametrize(
    "data",
    [
        gguf_bytes([kv(b"bad\xff\xfekey", 99, b"")]),  # invalid value type, non-UTF-8 key
        gguf_bytes([], [tinfo(b"w\xff\x80", [-3])]),  # negative dimension, non-UTF-8 name
        gguf_bytes([], [tinfo("\u00e9" * 40, [8])]),  # 80-byte UTF-8 name: too long, clipped in a character
        gguf_bytes([], [tinfo("\u20ac" * 30, [8])]),  # 90 bytes of 3-byte characters
        gguf_bytes([], [tinfo(b"\xe2\x82", [8]), tinfo(b"\xe2\x82", [8])]),  # duplicate truncated character
        gguf_bytes([kv(b"k\x00\x01\n", STR, s(b"\xff"))], [tinfo("w", [8], offset=64)]),  # control bytes, bad offset
    ],
)
def test_error_messages_quote_any_bytes(tmp_path, data):
    p = write(tmp_path, "bad.gguf", data)
    with pytest.raises(ggquant.GGUFError) as e:
        GGUFReader(p)
    msg = str(e.value)
    msg.encode("utf-8")  # a valid str: no lone surrogates
    assert "gguf_read" in msg and "bad.gguf" in msg


def test_non_utf8_names_are_readable_and_quoted(tmp_path):
    data = gguf_bytes([kv(b"k\xff", STR, s(b"v\xfe"))], [tinfo(b"t\xff", [8])], b"\0" * 32)
    r = GGUFReader(write(tmp_path, "ok.gguf", data))
    assert r.metadata["k\udcff"] == "v\udcfe"  # surrogate-escaped, so a read -> write round trip is exact
    assert r.tensor("t\udcff").shape == (8,)


def test_imatrix_with_non_utf8_tensor_name(tmp_path):
    data = gguf_bytes([], [tinfo(b"blk.\xff.in_sum2", [4])], b"\0" * 32)
    with pytest.raises(ggquant.GGUFError, match="not its counts"):
        ggquant.read_imatrix(write(tmp_path, "im.gguf", data))


# ---- 3. zero-element tensors whose other dimensions multiply past 2^63 (ggml accepts them)


@pytest.mark.parametrize("ne", [[0, 2**62, 2**62], [0, 2**40, 2**40, 2**40], [0, 2**61, 16]])
def test_zero_element_tensor_with_huge_dims(tmp_path, ne):
    p = write(tmp_path, "zero.gguf", gguf_bytes([], [tinfo("w", ne)]))
    r = GGUFReader(p)
    t = r.tensor("w")
    assert t.shape == tuple(reversed(ne)) and t.nbytes == 0 and t.data.size == 0
    if ggml_accepts(p) is not None:
        assert ggml_accepts(p)


def test_zero_element_prefix_overflow_is_rejected_as_ggml_does(tmp_path):
    p = write(tmp_path, "big.gguf", gguf_bytes([], [tinfo("w", [2**40, 2**40, 0])]))
    with pytest.raises(ggquant.GGUFError, match="overflows"):
        GGUFReader(p)
    if ggml_accepts(p) is not None:
        assert not ggml_accepts(p)


def test_imatrix_zero_element_counts_with_huge_dims(tmp_path):
    # found by the atheris imatrix harness: NumPy's "array is too big" escaped from t.data
    data = gguf_bytes([], [tinfo("w.in_sum2", [32]), tinfo("w.counts", [0, 2**61, 16], offset=128)], b"\0" * 128)
    with pytest.raises(ggquant.GGUFError, match="0 counts"):
        ggquant.read_imatrix(write(tmp_path, "im.gguf", data))


# ---- 4. safetensors index JSON: deep nesting, huge integers


@pytest.mark.parametrize(
    "text",
    [
        '{"weight_map": {}, "metadata": ' + "[" * 100000 + "]" * 100000 + "}",
        '{"weight_map": {}, "metadata": {"total_size": ' + "9" * 20000 + "}}",
        '{"weight_map": {"a": "x\\u0000y.safetensors"}}',
        '{"weight_map": {"a": 5}}',
        '{"weight_map": {"a": "../a.safetensors"}}',
        "\xff",
    ],
)
def test_checkpoint_index_hostile_json(tmp_path, text):
    with open(os.path.join(tmp_path, "model.safetensors.index.json"), "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    with pytest.raises(ggquant.GGQuantError):
        ggquant.load_checkpoint(tmp_path)


# ---- 5. bad arguments to quantize / dequantize / the MLX modes

X = np.zeros((2, 64), np.float32)


@pytest.mark.parametrize(
    "call",
    [
        lambda: ggquant.quantize(np.zeros((4, 0)), "int4"),
        lambda: ggquant.quantize(np.zeros((0, 0)), "mlx:mxfp8"),
        lambda: ggquant.quantize([[1.0, 2.0], [3.0]], "q8_0"),
        lambda: ggquant.quantize(np.array(["a"] * 32), "q8_0"),
        lambda: ggquant.quantize(X, "q8_0", imatrix="weights"),
        lambda: ggquant.quantize(X, "q8_0", imatrix=[[1.0], [2.0, 3.0]]),
        lambda: ggquant.quantize(X, "q8_0", nthreads=2**31),
        lambda: ggquant.quantize(X, "q8_0", nthreads=2**64),
        lambda: ggquant.quantize(X, "q8_0", nthreads="4"),
        lambda: ggquant.quantize(X, "int4", nthreads=-5),
        lambda: ggquant.quantize(X, "q8_0", allow_nonfinite="no"),
        lambda: ggquant.quantize(X, 3.5),
        lambda: ggquant.dequantize(np.zeros((2, 34), object), "q8_0"),
        lambda: ggquant.dequantize(object(), "q8_0", shape=(1, 32)),
        lambda: ggquant.dequantize(np.zeros((2, 34), np.uint8), "q8_0", shape="ab"),
        lambda: ggquant.dequantize(np.zeros((2, 34), np.uint8), "q8_0", shape=(2, 2**70)),
        lambda: ggquant.row_size("q8_0", 2**70),
        lambda: ggquant.row_size("q8_0", "x"),
        lambda: ggquant.quant_shape_to_byte_shape("ab", "q8_0"),
        lambda: gm.quantize(X, "affine", bits="x"),
        lambda: gm.quantize(X, "affine", bits=2**80),
        lambda: gm.quantize(X, "affine", group_size=2**70),
        lambda: gm.quantize(X, "nvfp4", global_scale="x"),
        lambda: gm.quantize(X, "nvfp4", global_scale=1e300),
        lambda: gm.dequantize(gm.quantize(X, "affine"), dtype="int7"),
    ],
)
def test_bad_arguments_raise_ggquant_errors(call):
    with pytest.raises(ggquant.GGQuantError):
        call()


# ---- 6. imatrix chunk metadata of the wrong type


@pytest.mark.parametrize(
    "value",
    [
        (STR, s("ten")),
        (ARR, struct.pack("<iQ", U32, 2) + struct.pack("<II", 1, 2)),
        (6, struct.pack("<f", math.nan)),
        (6, struct.pack("<f", math.inf)),
        (12, struct.pack("<d", -math.inf)),
        (5, struct.pack("<i", -3)),
        (7, b"\x01"),
    ],
)
@pytest.mark.parametrize("key", ["imatrix.chunk_count", "imatrix.chunk_size"])
def test_imatrix_chunk_metadata_types(tmp_path, key, value):
    vtype, payload = value
    data = gguf_bytes([kv(key, vtype, payload)], [tinfo("w.in_sum2", [8]), tinfo("w.counts", [1], offset=32)], b"\0" * 64)
    with pytest.raises(ggquant.GGUFError, match=key):
        ggquant.read_imatrix(write(tmp_path, "im.gguf", data))


def test_imatrix_chunk_metadata_valid(tmp_path):
    data = gguf_bytes([kv("imatrix.chunk_count", U32, struct.pack("<I", 7))],
                      [tinfo("w.in_sum2", [8]), tinfo("w.counts", [1], offset=32)], b"\0" * 64)
    assert ggquant.read_imatrix(write(tmp_path, "im.gguf", data)).chunk_count == 7


# ---- 8. FIFOs and other non-regular files never block


def _returns_within(fn, seconds: float, unblock) -> BaseException | None:
    """Run fn in a thread; it must finish within `seconds` (else `unblock()` frees it and the test fails)."""
    box: list[BaseException | None] = [None]

    def run():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box[0] = e

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    if th.is_alive():
        unblock()
        th.join(5)
        pytest.fail(f"{fn} blocked on a FIFO")
    return box[0]


@pytest.mark.parametrize(
    "opener",
    [GGUFReader, ggquant.safe_open, ggquant.load_file, ggquant.read_imatrix, ggquant.load_checkpoint, read_gguf_split],
)
def test_fifo_is_refused_without_blocking(tmp_path, opener):
    fifo = os.path.join(tmp_path, "model.safetensors" if opener is ggquant.load_checkpoint else "pipe")
    os.mkfifo(fifo)

    def unblock():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)

    err = _returns_within(lambda: opener(fifo), 10, unblock)
    assert isinstance(err, ggquant.GGQuantIOError) and "not a regular file" in str(err)


def test_fifo_index_is_refused(tmp_path):
    os.mkfifo(os.path.join(tmp_path, "model.safetensors.index.json"))
    err = _returns_within(lambda: ggquant.load_checkpoint(tmp_path), 10, lambda: None)
    assert isinstance(err, ggquant.GGQuantIOError)


def test_directory_and_device_are_refused(tmp_path):
    for p in (str(tmp_path), "/dev/null"):
        with pytest.raises(ggquant.GGQuantIOError, match="not a regular file"):
            GGUFReader(p)
        with pytest.raises(ggquant.GGQuantIOError):
            ggquant.read_imatrix(p)


# ---- 9. embedded NULs are refused everywhere; str, bytes, PathLike and non-UTF-8 names all work


def test_nul_in_writer_path_writes_nothing(tmp_path):
    target = os.path.join(tmp_path, "a.gguf")
    for path in (target + "\0.evil", os.fsencode(target) + b"\0x"):
        with pytest.raises(ggquant.GGQuantIOError, match="NUL"):
            with GGUFWriter(path) as w:
                w.add_kv("general.architecture", "llama")
        with pytest.raises(ggquant.GGQuantIOError, match="NUL"):
            ggquant.save_file({"a": np.zeros(2, np.float32)}, path)
        with pytest.raises(ggquant.GGQuantIOError, match="NUL"):
            ggquant.save_sharded({"a": np.zeros(2, np.float32)}, path)
    assert os.listdir(tmp_path) == []


def test_nul_in_the_core_writer_is_refused(tmp_path):
    with pytest.raises(ggquant.GGQuantIOError, match="NUL"):
        _core.GGUFWriterCore(os.fsencode(os.path.join(tmp_path, "a.gguf")) + b"\0.x", 32)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("opener", [GGUFReader, ggquant.safe_open, ggquant.load_file, ggquant.read_imatrix,
                                    ggquant.load_checkpoint, read_gguf_split])
def test_nul_in_reader_path(tmp_path, opener):
    real = os.path.join(tmp_path, "m.gguf")
    GGUFWriter(real).close()
    with pytest.raises(ggquant.GGQuantIOError, match="NUL"):
        opener(real + "\0junk")
    with pytest.raises(ggquant.GGQuantError):
        opener(12345)


def test_non_utf8_file_names_round_trip(tmp_path):
    raw_dir = os.fsencode(tmp_path)
    g = raw_dir + b"/caf\xe9.gguf"
    with GGUFWriter(g) as w:  # bytes path
        w.add_kv("general.architecture", "x")
    assert os.path.exists(g)
    assert GGUFReader(os.fsdecode(g)).metadata["general.architecture"] == "x"  # surrogate-escaped str
    st = raw_dir + b"/w\xff.safetensors"
    ggquant.save_file({"a": np.arange(3, dtype=np.int8)}, os.fsdecode(st))
    assert ggquant.load_file(st)["a"].tolist() == [0, 1, 2]
    im = raw_dir + b"/i\xfe.dat"
    with open(im, "wb") as f:
        f.write(struct.pack("<ii1sii2f", 1, 1, b"w", 1, 2, 1.0, 2.0))
    assert ggquant.load_imatrix(os.fsdecode(im))["w"].tolist() == [1.0, 2.0]
    with pytest.raises(ggquant.GGQuantIOError) as e:
        GGUFReader(raw_dir + b"/missing\xff.gguf")
    assert "missing" in str(e.value)


# ---- 11. finite input that quantizes into blocks decoding to Inf/NaN


@pytest.mark.parametrize("big", [1e30, np.finfo(np.float32).max, 1e6])
@pytest.mark.parametrize("qtype", ["q8_0", "q4_0", "q4_1", "q5_k", "q4_k", "q2_k", "iq4_nl", "f16", "tq2_0"])
def test_overflowing_blocks_raise_nonfinite_error(qtype, big):
    x = np.random.default_rng(1).standard_normal((3, 512)).astype(np.float32)
    x[2, 300] = big
    q_any = ggquant.quantize(x, qtype, allow_nonfinite=True)  # ggml's bytes, unchanged
    decoded = ggquant.dequantize(q_any, qtype)
    if np.isfinite(decoded).all():
        ggquant.quantize(x, qtype)  # nothing to report: no error by default either
        return
    info = ggquant.type_info(qtype)
    bad_row, bad_col = np.argwhere(~np.isfinite(decoded))[0]
    with pytest.raises(ggquant.NonFiniteError) as e:
        ggquant.quantize(x, qtype, name="blk.0.w")
    msg = str(e.value)
    assert "blk.0.w" in msg and f"row {bad_row}, block {bad_col // info.block_size}" in msg
    assert "allow_nonfinite" in msg


def test_overflow_bytes_match_ggml_when_allowed():
    sys.path.insert(0, os.path.dirname(__file__))
    from oracle import ggml_oracle

    if ggml_oracle.get_oracle() is None:
        pytest.skip(ggml_oracle.unavailable_reason())
    x = np.random.default_rng(2).standard_normal((2, 256)).astype(np.float32)
    x[1, 5] = np.finfo(np.float32).max
    for qtype in ("q8_0", "q4_k", "f16"):
        tid = int(ggquant.resolve_type(qtype))
        ours = ggquant.quantize(x, qtype, allow_nonfinite=True)
        assert ours.tobytes() == ggml_oracle.quantize_chunk(tid, x).tobytes()


def test_nonfinite_block_scan_finds_planted_scales():
    x = np.random.default_rng(3).standard_normal((70, 512)).astype(np.float32)
    for qtype, scale_offset in (("q4_k", 0), ("q4_k", 2), ("q8_0", 0), ("q6_k", 208)):
        info = ggquant.type_info(qtype)
        q = ggquant.quantize(x, qtype).reshape(70, -1).copy()
        tid = int(info.type)
        assert _core.nonfinite_block(tid, q, 512, 0) is None
        q[65, info.type_size + scale_offset : info.type_size + scale_offset + 2] = np.frombuffer(np.float16(np.inf).tobytes(), np.uint8)
        q[69, scale_offset : scale_offset + 2] = np.frombuffer(np.float16(np.nan).tobytes(), np.uint8)
        for n in (1, 2, 0):
            assert _core.nonfinite_block(tid, q, 512, n) == (65, 1)


# ---- 12. temporaries: stale ones of dead processes go, live ones stay; SIGTERM cleans up; ENOSPC


def _dead_pid() -> int:
    pid = 2**22 - 1
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except OSError:
            pass
        pid -= 1


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    out = os.path.join(tmp_path, "m.gguf")
    dead = f"{out}.tmp-{_dead_pid()}-3"
    live = f"{out}.tmp-{os.getppid()}-0"
    other = os.path.join(tmp_path, "other.gguf.tmp-1-0")
    partial = os.path.join(tmp_path, f".m.gguf.partial-{_dead_pid()}")
    for p in (dead, live, other):
        open(p, "w").close()
    os.mkdir(partial)
    with GGUFWriter(out) as w:
        w.add_kv("general.architecture", "x")
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(["m.gguf", os.path.basename(live), "other.gguf.tmp-1-0"])
    st = os.path.join(tmp_path, "w.safetensors")
    open(f"{st}.tmp-{_dead_pid()}-0", "w").close()
    ggquant.save_file({"a": np.zeros(1, np.uint8)}, st)
    assert not [n for n in os.listdir(tmp_path) if n.startswith("w.safetensors.tmp")]
    assert remove_stale_temporaries(out) == []


def test_sigterm_raises_keyboard_interrupt():
    import signal

    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_save_sharded_leaves_no_folder_on_enospc(tmp_path, monkeypatch):
    folder = os.path.join(tmp_path, "new", "ckpt")

    def full_disk(self):
        raise ggquant.GGQuantIOError("[write] cannot write: No space left on device")

    monkeypatch.setattr(SafetensorsWriter, "commit", full_disk)
    with pytest.raises(ggquant.GGQuantIOError):
        ggquant.save_sharded({"a": np.zeros(10, np.uint8), "b": np.zeros(10, np.uint8)}, folder, max_shard_size=12)
    assert not os.path.exists(folder)
    os.makedirs(folder)
    keep = os.path.join(folder, "keep.txt")
    open(keep, "w").close()
    with pytest.raises(ggquant.GGQuantIOError):
        ggquant.save_sharded({"a": np.zeros(10, np.uint8)}, folder)
    assert os.listdir(folder) == ["keep.txt"]  # an existing folder is left as it was


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_save_sharded_into_read_only_folder(tmp_path):
    os.chmod(tmp_path, stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(ggquant.GGQuantIOError):
            ggquant.save_sharded({"a": np.zeros(10, np.uint8)}, tmp_path)
    finally:
        os.chmod(tmp_path, stat.S_IRWXU)


# ---- 10 and 13 (file layer): an output that is an input; a file that shrinks while in use


def test_output_that_is_an_input_is_refused(tmp_path):
    cfg = os.path.join(tmp_path, "config.json")
    open(cfg, "w").close()
    with pytest.raises(ggquant.GGQuantIOError, match="one of the input files"):
        check_not_an_input(os.path.join(tmp_path, ".", "config.json"), [cfg])
    os.symlink(cfg, os.path.join(tmp_path, "link.json"))
    with pytest.raises(ggquant.GGQuantIOError):
        check_not_an_input(os.path.join(tmp_path, "link.json"), [cfg])
    with pytest.raises(ggquant.GGQuantIOError, match="holds the input"):
        check_not_an_input(tmp_path, [cfg])
    check_not_an_input(os.path.join(tmp_path, "out.gguf"), [cfg])


def test_size_check_notices_truncation(tmp_path):
    p = os.path.join(tmp_path, "w.safetensors")
    ggquant.save_file({"a": np.zeros(1000, np.float32)}, p)
    size = os.path.getsize(p)
    check_size_unchanged(p, size)
    os.truncate(p, size - 100)
    with pytest.raises(ggquant.GGQuantIOError, match="changed size"):
        check_size_unchanged(p, size)


# ---- 14. a million tensor infos: no per-tensor Python objects on open


def test_many_tensor_infos_open_lazily(tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    from bench_gguf_many_tensors import build

    n = 200_000
    p = os.path.join(tmp_path, "many.gguf")
    build(p, n)
    tracemalloc.start()
    r = GGUFReader(p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2_000_000, peak  # a list of GGUFTensor objects would take well over 50 MB
    assert len(r.tensors) == n and r.tensors[-1].name == f"t{n - 1:07d}"
    assert r.tensor("t0123456").shape == (0,) and r.tensors[123456].name == "t0123456"
    assert sum(1 for _ in r.tensors) == n
    with pytest.raises(KeyError):
        r.tensor("nope")


# ---- every public entry point, a few hundred mutated files and bad arguments: GGQuantError only


def _seed_files(tmp_path) -> dict[str, bytes]:
    tmp_path.mkdir()
    d = str(tmp_path)
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    g = os.path.join(d, "seed.gguf")
    with GGUFWriter(g) as w:
        w.add_kv("general.architecture", "llama")
        w.add_kv("a.strs", ["x", "yz"], GGUFValueType.ARRAY, GGUFValueType.STRING)
        w.add_kv("a.arr", np.arange(3, dtype=np.int16))
        for t in ("f32", "q8_0"):
            w.add_tensor_info(f"w.{t}", x.shape, t)
        for t in ("f32", "q8_0"):
            w.write_tensor(f"w.{t}", ggquant.quantize(x, t))
    st = os.path.join(d, "seed.safetensors")
    ggquant.save_file({"a": x, "b": x.astype(np.float16), "c": np.arange(3, dtype=np.int64)}, st, {"k": "v"})
    im = os.path.join(d, "seed_im.gguf")
    with GGUFWriter(im) as w:
        w.add_kv("imatrix.chunk_count", 3, GGUFValueType.UINT32)
        w.add_tensor_info("w.in_sum2", (1, 32), "f32")
        w.add_tensor_info("w.counts", (1, 1), "f32")
        w.write_tensor("w.in_sum2", np.ones((1, 32), np.float32))
        w.write_tensor("w.counts", np.full((1, 1), 2, np.float32))
    out = {}
    for name, p in (("gguf", g), ("safetensors", st), ("imatrix_gguf", im)):
        with open(p, "rb") as f:
            out[name] = f.read()
    out["imatrix_dat"] = struct.pack("<ii1sii4f", 1, 1, b"w", 2, 4, 2.0, 4.0, 6.0, 8.0) + struct.pack("<ii", 3, 2) + b"ds"
    out["index"] = json.dumps({"metadata": {"total_size": 1}, "weight_map": {"a": "seed.safetensors", "b": "seed.safetensors",
                                                                            "c": "seed.safetensors"}}).encode()
    return out


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(b) + 1) if b else 0
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(i, len(b) - 1)] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif op == 2:
            del b[i:]
        elif op == 3:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 9)))
        elif op == 4 and len(b) >= 8:
            j = min(i, len(b) - 8)
            b[j : j + 8] = struct.pack("<q", rng.choice([-1, 2**63 - 1, 2**31, 0, 1 << 40, rng.randrange(-(2**63), 2**63)]))
        elif op == 5 and b:
            j = rng.randrange(len(b))
            b[i:i] = b[j : j + rng.randint(1, 32)]
    return bytes(b)


def _use_gguf(p):
    r = GGUFReader(p)
    for t in r.tensors:
        t.data.tobytes()
        if t.data.size and t.type.name in ("F32", "Q8_0"):
            ggquant.dequantize(t.data, t.type, t.shape)
    r.close()
    read_gguf_split(p)


def _use_safetensors(p):
    with ggquant.safe_open(p) as f:
        f.metadata()
        for k in f.keys():
            f.get(k).tobytes()
            if f.nbytes(k) < 1 << 20:
                f.get_float32(k)
    ggquant.load_file(p)


def _use_checkpoint(d):
    with ggquant.load_checkpoint(d) as ck:
        for k in ck.keys():
            ck[k].tobytes()
            ck.shard_of(k)


def test_mutated_files_raise_only_ggquant_errors(tmp_path):
    seeds = _seed_files(tmp_path / "seeds")
    rng = random.Random(14)
    work = tmp_path / "work"
    work.mkdir()
    p = str(work / "input")
    ckpt = tmp_path / "seeds"
    runs = [
        ("gguf", _use_gguf, p),
        ("safetensors", _use_safetensors, p),
        ("imatrix_gguf", ggquant.read_imatrix, p),
        ("imatrix_dat", ggquant.load_imatrix, p),
        ("gguf", ggquant.read_imatrix, p),
        ("index", _use_checkpoint, str(ckpt)),
    ]
    outcomes = {"ok": 0, "rejected": 0}
    for seed_name, use, target in runs:
        for i in range(60):
            data = _mutate(seeds[seed_name], rng)
            dest = str(ckpt / "model.safetensors.index.json") if seed_name == "index" else p
            with open(dest, "wb") as f:
                f.write(data)
            try:
                use(target)
                outcomes["ok"] += 1
            except ggquant.GGQuantError:
                outcomes["rejected"] += 1
            except Exception as e:  # noqa: BLE001 - the finding this test exists for
                pytest.fail(f"{seed_name} mutation {i} ({use.__name__}): {type(e).__name__}: {e}\ninput: {data[:200]!r}")
    assert outcomes["ok"] > 0 and outcomes["rejected"] > 100, outcomes


BAD_VALUES = [None, -1, 2**64, 1.5, float("nan"), "x", b"\0", [], [[1], [2, 3]], {"a": 1}, object(), np.zeros((0,)),
              np.array(["s"]), np.zeros((2, 3), object), "a\0b"]


def _calls(tmp: str):
    p = os.path.join(tmp, "out")
    ok_x = np.zeros((2, 32), np.float32)
    for v in BAD_VALUES:
        yield lambda v=v: ggquant.quantize(v, "q8_0")
        yield lambda v=v: ggquant.quantize(ok_x, v)
        yield lambda v=v: ggquant.quantize(ok_x, "q8_0", imatrix=v)
        yield lambda v=v: ggquant.quantize(ok_x, "q4_k", nthreads=v)
        yield lambda v=v: ggquant.quantize(v, "int4")
        yield lambda v=v: ggquant.dequantize(v, "q8_0")
        yield lambda v=v: ggquant.dequantize(np.zeros((2, 34), np.uint8), "q8_0", shape=v)
        yield lambda v=v: ggquant.dequantize(v)
        yield lambda v=v: ggquant.row_size(v, 32)
        yield lambda v=v: ggquant.row_size("q8_0", v)
        yield lambda v=v: ggquant.quant_shape_to_byte_shape(v, "q8_0")
        yield lambda v=v: ggquant.quant_shape_from_byte_shape(v, "q8_0")
        yield lambda v=v: ggquant.type_info(v)
        yield lambda v=v: ggquant.resolve_type(v)
        yield lambda v=v: gm.quantize(ok_x, v)
        yield lambda v=v: gm.quantize(ok_x, "affine", bits=v)
        yield lambda v=v: gm.quantize(ok_x, "affine", group_size=v)
        yield lambda v=v: gm.quantize(ok_x, "nvfp4", global_scale=v)
        yield lambda v=v: gm.dequantize(v)
        yield lambda v=v: gm.dequantize(gm.quantize(ok_x, "affine"), dtype=v)
        yield lambda v=v: GGUFReader(v)
        yield lambda v=v: GGUFWriter(v)
        yield lambda v=v: GGUFWriter(p, alignment=v)
        yield lambda v=v: GGUFWriter(p).add_kv("k", v)
        yield lambda v=v: GGUFWriter(p).add_kv(v, 1)
        yield lambda v=v: GGUFWriter(p).add_tensor_info("t", v, "f32")
        yield lambda v=v: GGUFWriter(p).add_tensor_info(v, (32,), "f32")
        yield lambda v=v: ggquant.safe_open(v)
        yield lambda v=v: ggquant.load_file(v)
        yield lambda v=v: ggquant.load_checkpoint(v)
        yield lambda v=v: ggquant.read_imatrix(v)
        yield lambda v=v: ggquant.imatrix_for({"w": np.ones(4, np.float32)}, "w", v)
        yield lambda v=v: ggquant.save_file(v, p)
        yield lambda v=v: ggquant.save_file({"a": v}, p)
        yield lambda v=v: ggquant.save_file({"a": ok_x}, v)
        yield lambda v=v: ggquant.save_file({"a": ok_x}, p, metadata=v)
        yield lambda v=v: ggquant.save_sharded({"a": ok_x}, os.path.join(tmp, "sh"), max_shard_size=v)
        yield lambda v=v: SafetensorsWriter(p, v)
        yield lambda v=v: SafetensorsWriter(p, {"a": (v, (2,))})
        yield lambda v=v: SafetensorsWriter(p, {"a": ("F32", v)})
        yield lambda v=v: parse_size(v)
        yield lambda v=v: ggquant.set_num_threads(v)
        yield lambda v=v: ggquant.set_simd_level(v)


def test_bad_arguments_to_every_entry_point_raise_only_ggquant_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a plain "x" among the bad values is a valid relative path: written here
    n = 0
    try:
        for call in _calls(str(tmp_path)):
            n += 1
            try:
                call()
            except ggquant.GGQuantError:
                pass
            except Exception as e:  # noqa: BLE001 - the finding this test exists for
                import inspect

                pytest.fail(f"{inspect.getsource(call).strip()} with a bad value: {type(e).__name__}: {e}")
    finally:
        ggquant.set_num_threads(0)
        ggquant.set_simd_level(ggquant.config()["simd_best"])
    assert n > 500
    leftovers = [f for f in os.listdir(tmp_path) if ".tmp-" in f]
    assert leftovers == []


@pytest.mark.parametrize("mode", ["affine", "mxfp4", "mxfp8", "nvfp4", "int4", "int8"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("pair", [False, True])
def test_mlx_groups_that_decode_to_nonfinite_raise(mode, dtype, pair):
    big = np.finfo(dtype).max
    x = np.random.default_rng(4).standard_normal((3, 256)).astype(dtype)
    x[2, 130] = big
    if pair:
        x[2, 131] = -big
    kept = gm.quantize(x, mode, allow_nonfinite=True)
    decoded = gm.dequantize(kept)
    if np.isfinite(decoded).all():
        gm.quantize(x, mode)
        return
    row, col = np.argwhere(~np.isfinite(decoded))[0]
    with pytest.raises(ggquant.NonFiniteError, match=f"row {row}, group {col // kept.group_size}") as e:
        ggquant.quantize(x, "mlx:" + mode, name="blk.1.w")
    assert "blk.1.w" in str(e.value)
