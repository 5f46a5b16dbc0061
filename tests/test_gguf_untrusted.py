"""Malformed GGUF files (formats.md section 5, ggml's test-gguf.cpp cases): each is rejected with a
GGUFError that names the cause. Files are built byte by byte with struct.pack."""

from __future__ import annotations

import struct

import pytest

import ggquant
from ggquant import _core
from ggquant.gguf import GGUFReader

U32, I32, STR, ARR, U8 = 4, 5, 8, 9, 0


def s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload: bytes) -> bytes:
    return s(key) + struct.pack("<i", vtype) + payload


def tinfo(name, ne, ttype=0, offset=0) -> bytes:
    return s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", d) for d in ne) + struct.pack("<iQ", ttype, offset)


def gguf_bytes(kvs=(), infos=(), data=b"", version=3, n_kv=None, n_t=None, align=32, magic=b"GGUF") -> bytes:
    head = magic + struct.pack("<Iqq", version, len(infos) if n_t is None else n_t, len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    body += b"\0" * ((align - len(body) % align) % align)
    return body + data


def valid_file() -> bytes:
    return gguf_bytes([kv("general.architecture", STR, s("llama"))], [tinfo("w", [8, 2])], b"\0" * 64)


def rejects(data: bytes, match: str) -> None:
    with pytest.raises(ggquant.GGUFError, match=match):
        _core.gguf_parse_bytes(data)


def test_valid_baseline_parses(tmp_path):
    _core.gguf_parse_bytes(valid_file())
    p = tmp_path / "ok.gguf"
    p.write_bytes(valid_file())
    assert GGUFReader(p).tensor("w").shape == (2, 8)


def test_empty_header_and_zero_dim_and_custom_alignment_accepted():
    _core.gguf_parse_bytes(gguf_bytes())
    _core.gguf_parse_bytes(gguf_bytes([], [tinfo("z", [0, 4])]))
    align1 = kv("general.alignment", U32, struct.pack("<I", 1))
    _core.gguf_parse_bytes(gguf_bytes([align1], [tinfo("a", [3], 24), tinfo("b", [5], 24, 3)], b"\0" * 8, align=1))


@pytest.mark.parametrize(
    "data,match",
    [
        (b"GGU", "bad magic"),
        (b"FUGG" + valid_file()[4:], "bad magic"),
        (gguf_bytes(version=0), "unsupported GGUF version 0"),
        (gguf_bytes(version=1), "unsupported GGUF version 1"),
        (gguf_bytes(version=4), "unsupported GGUF version 4"),
        (gguf_bytes(version=3 << 24), "byte-swapped"),
        (gguf_bytes(n_t=-1), "tensor count -1"),
        (gguf_bytes(n_kv=-1), "metadata count -1"),
        (gguf_bytes(n_kv=2**40), "metadata count"),
        (gguf_bytes(n_t=2**40), "tensor count"),
        (valid_file()[:20], "needs 8 bytes"),
    ],
)
def test_bad_header(data, match):
    rejects(data, match)


@pytest.mark.parametrize(
    "kvs,match",
    [
        ([struct.pack("<Q", 2**64 - 1) + b"k"], "length"),
        ([kv("", U8, b"\1")], "is empty"),
        ([kv("k", 13, b"\1")], "invalid value type 13"),
        ([kv("k", -1, b"\1")], "invalid value type -1"),
        ([kv("k", U8, b"\1"), kv("k", U8, b"\2")], "duplicate metadata key 'k'"),
        ([kv("general.alignment", U32, struct.pack("<I", 13))], "not a power of two"),
        ([kv("general.alignment", U32, struct.pack("<I", 0))], "not a power of two"),
        ([kv("general.alignment", U32, struct.pack("<I", 2**31))], "not a power of two"),
        ([kv("general.alignment", I32, struct.pack("<i", 32))], "must be u32"),
        ([kv("k", STR, struct.pack("<Q", 1000) + b"abc")], "value of key 'k'.*needs 1000 bytes"),
        ([kv("k", ARR, struct.pack("<iQ", ARR, 1) + struct.pack("<iQ", U8, 0))], "array of arrays"),
        ([kv("k", ARR, struct.pack("<iQ", 77, 1))], "array of invalid type 77"),
        ([kv("k", ARR, struct.pack("<iQ", U32, 2**62))], "array elements|needs"),
        ([kv("k", ARR, struct.pack("<iQ", U32, 2**29) + b"\0" * 16)], "needs"),
        ([kv("k", ARR, struct.pack("<iQ", STR, 2**20))], "claims 1048576 strings"),
    ],
)
def test_bad_metadata(kvs, match):
    rejects(gguf_bytes(kvs), match)


BIG = 4 * (2**31 - 1)


@pytest.mark.parametrize(
    "infos,data,match",
    [
        ([tinfo("n" * 64, [8])], b"\0" * 32, "at most 63"),
        ([tinfo("w", [1, 1, 1, 1, 1])], b"\0" * 32, "5 dimensions"),
        ([tinfo("w", [8, -1])], b"", "negative dimension"),
        ([tinfo("w", [BIG, BIG, BIG, BIG])], b"", "overflows"),
        ([tinfo("w", [2**40, 2**30], 0)], b"", "overflows"),
        ([tinfo("w", [8], 43)], b"\0" * 32, "invalid or retired ggml type 43"),
        ([tinfo("w", [32], 4)], b"\0" * 32, "invalid or retired ggml type 4"),
        ([tinfo("w", [32], 36)], b"\0" * 32, "invalid or retired ggml type 36"),
        ([tinfo("w", [30], 2)], b"\0" * 32, "not a multiple of the q4_0 block size 32"),
        ([tinfo("w", [8], 0, 2**64 - 1)], b"\0" * 32, "has offset"),
        ([tinfo("w", [8]), tinfo("w", [8], 0, 32)], b"\0" * 64, "duplicate tensor name 'w'"),
        ([tinfo("a", [3], 24), tinfo("b", [5], 24, 3)], b"\0" * 64, "tensor 'b' has offset 3, expected 32"),
        ([tinfo("w", [8, 2])], b"\0" * 63, "not within the file bounds"),
        ([tinfo("a", [0x7FFFFFFFFFFFFFC0], 24), tinfo("b", [0x7FFFFFFFFFFFFFC0], 24, 0x7FFFFFFFFFFFFFC0)], b"", "overflows|bounds"),
    ],
)
def test_bad_tensor_infos(infos, data, match):
    rejects(gguf_bytes([], infos, data), match)


def test_errors_from_files_name_the_path(tmp_path):
    p = tmp_path / "bad.gguf"
    p.write_bytes(gguf_bytes(version=7))
    with pytest.raises(ggquant.GGUFError, match="bad.gguf"):
        GGUFReader(p)
    with pytest.raises(ggquant.GGQuantIOError, match="cannot open"):
        GGUFReader(tmp_path / "missing.gguf")


def test_every_truncation_of_a_valid_file_is_rejected():
    data = valid_file()
    for n in range(len(data)):
        with pytest.raises(ggquant.GGUFError):
            _core.gguf_parse_bytes(data[:n])
