"""Malformed safetensors files, each built byte by byte with struct.pack, are rejected with a
SafetensorsError naming the cause (formats.md section 4; huggingface/safetensors tensor.rs tests).

Where the reference reader has an opinion, it is asked too: both must reject (the one deliberate
difference is duplicate JSON keys, which the reference tolerates and ggquant rejects).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import safetensors
import safetensors.numpy as st_np

import ggquant
from ggquant import _core


def file_bytes(header: bytes | str, data: bytes = b"", n: int | None = None) -> bytes:
    if isinstance(header, str):
        header = header.encode()
    return struct.pack("<Q", len(header) if n is None else n) + header + data


def info(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def reference_rejects(image: bytes) -> bool:
    try:
        safetensors.deserialize(image)
    except Exception:  # noqa: BLE001 - the reference raises SafetensorError or others
        return True
    return False


@pytest.fixture
def check(tmp_path):
    """Writes the image, expects both readers to reject it, ggquant with a message matching `cause`."""

    def run(image: bytes, cause: str, reference: bool = True) -> None:
        p = tmp_path / "bad.safetensors"
        p.write_bytes(image)
        with pytest.raises(ggquant.SafetensorsError, match=cause):
            ggquant.safe_open(p)
        with pytest.raises(ggquant.SafetensorsError, match=cause):
            _core._safetensors_parse(image)
        if reference:
            assert reference_rejects(image), "the reference reader accepts this file"

    return run


# ---- the reference's own error cases


def test_json_attack_overlapping_offsets(check):
    header = {f"weight_{i}": info("F32", [2, 2], 0, 16) for i in range(10)}
    check(file_bytes(json.dumps(header), b"\0" * 16), r"invalid offset of tensor 'weight_\d'.*overlap")


def test_hole_between_tensors(check):
    header = {"a": info("U8", [4], 0, 4), "b": info("U8", [4], 8, 12)}
    check(file_bytes(json.dumps(header), b"\0" * 12), r"invalid offset of tensor 'b'.*hole")


def test_hole_before_first_tensor(check):
    check(file_bytes(json.dumps({"a": info("U8", [4], 4, 8)}), b"\0" * 8), r"tensor 'a'.*hole")


def test_end_before_begin(check):
    header = {"a": info("U8", [0], 0, 0), "b": info("U8", [4], 0, 0)}
    check(file_bytes(json.dumps({"a": info("U8", [4], 4, 0)}), b"\0" * 4), r"tensor 'a'")
    check(file_bytes(json.dumps(header), b""), r"invalid tensor info of 'b'")


def test_trailing_bytes(check):
    check(file_bytes(json.dumps({"a": info("F32", [2], 0, 8)}), b"\0" * 8 + b"polyglot"), r"incomplete buffer.*trailing")


def test_truncated_data(check):
    check(file_bytes(json.dumps({"a": info("F32", [2, 2], 0, 16)}), b"\0" * 14), r"incomplete buffer.*truncated")


def test_header_too_large(check):
    # the reference's case: a length with high bytes 0xff
    check(b"<\x00\x00\x00\x00\xff\xff\xff" + b'{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}', r"header too large")
    check(file_bytes("{}", n=100_000_001), r"header too large")


def test_header_too_small(check):
    check(b"", r"header too small")
    check(b"\x02\x00\x00\x00\x00\x00\x00", r"header too small")


def test_invalid_header_length(check):
    check(struct.pack("<Q", 60), r"invalid header length")
    check(file_bytes("{}", n=3), r"invalid header length")


def test_non_utf8(check):
    check(file_bytes(b'{"\xff":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), r"not valid UTF-8")
    check(file_bytes(b'{"\xc0\x80":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), r"not valid UTF-8")  # overlong
    check(file_bytes(b'{"\xed\xa0\x80":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), r"not valid UTF-8")  # surrogate


def test_not_json(check):
    check(file_bytes("{"), r"invalid JSON header")
    check(file_bytes("[]"), r"must be a JSON object")
    check(file_bytes('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},}'), r"invalid JSON header")  # trailing comma
    check(file_bytes('{} x'), r"trailing characters")
    check(file_bytes('{"a": /* c */ 1}'), r"invalid JSON header")


def test_invalid_info(check):
    check(file_bytes(json.dumps({"a": info("I32", [2, 2], 0, 4)}), b"\0" * 4), r"invalid tensor info of 'a'")


def test_validation_overflow(check):
    for shape in ([2, 2**64 - 2], [2, 2**63 - 1]):
        check(file_bytes(json.dumps({"a": info("F32", shape, 0, 16)}), b"\0" * 16), r"tensor 'a': validation overflow")


def test_integer_beyond_64_bits(check):
    check(file_bytes(json.dumps({"a": info("U8", [2**64], 0, 0)})), r"does not fit 64 bits")
    check(file_bytes(json.dumps({"a": info("U8", [1], 0, 2**64 + 1)}), b"\0"), r"does not fit 64 bits")


def test_duplicate_tensor_names(check):
    header = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}'
    check(file_bytes(header, b"\0\0"), r'duplicate key "a"', reference=False)


def test_duplicate_field_in_tensor_info(check):
    header = '{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}'
    check(file_bytes(header, b"\0"), r'duplicate key "dtype"')


def test_duplicate_metadata_key(check):
    check(file_bytes('{"__metadata__":{"k":"1","k":"2"}}'), r'duplicate key "k"', reference=False)
    check(file_bytes('{"__metadata__":{},"__metadata__":{}}'), r'duplicate key "__metadata__"', reference=False)


def test_duplicate_key_in_ignored_field(check):
    header = '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":{"x":1,"x":2}}}'
    check(file_bytes(header, b"\0"), r'duplicate key "x"', reference=False)


def test_unknown_dtype(check):
    check(file_bytes(json.dumps({"a": info("F33", [1], 0, 4)}), b"\0" * 4), r"tensor 'a': unknown dtype 'F33'")
    check(file_bytes(json.dumps({"a": {**info("U8", [1], 0, 1), "dtype": 8}}), b"\0"), r"expected a string")


def test_non_string_metadata(check):
    check(file_bytes('{"__metadata__":{"a":1}}'), r"__metadata__ value of 'a' is not a string")
    check(file_bytes('{"__metadata__":{"a":null}}'), r"__metadata__ value of 'a' is not a string")
    check(file_bytes('{"__metadata__":["a"]}'), r"__metadata__ must be an object")


def test_malformed_tensor_info(check):
    check(file_bytes('{"a":null}'), r"tensor 'a': info must be an object")
    check(file_bytes('{"a":{"dtype":"U8","shape":[1]}}', b"\0"), r"tensor 'a': missing field 'data_offsets'")
    check(file_bytes('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}', b"\0"), r"exactly 2 elements")
    check(file_bytes('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}', b"\0"), r"exactly 2 elements")
    check(file_bytes('{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', b"\0"), r"non-negative integer, got 1.0")
    check(file_bytes('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}'), r"non-negative integer, got -1")
    check(file_bytes('{"a":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', b"\0"), r"non-negative integer")


def test_misaligned_sub_byte_tensor(check):
    check(file_bytes(json.dumps({"a": info("F4", [3], 0, 1)}), b"\0"), r"tensor 'a': misaligned")


def test_bad_string_escapes(check):
    for key in (r"\ud800", r"\udc00", r"\ud800\u0041", r"\x41", r"\u12"):
        header = '{"' + key + '":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'
        check(file_bytes(header), r"invalid JSON header")
    check(file_bytes(b'{"a\x01":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'), r"control character")


def with_extra_field(value: str) -> bytes:
    return file_bytes('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"x":' + value + "}}")


def test_deep_nesting_is_bounded(check):
    check(with_extra_field("[" * 100_000 + "]" * 100_000), r"nesting deeper than 127")
    # the reference's parser (serde_json) allows 127 nested containers: so does ggquant
    check(with_extra_field("[" * 126 + "]" * 126), r"nesting deeper than 127")
    image = with_extra_field("[" * 125 + "]" * 125)
    assert not reference_rejects(image)
    assert _core._safetensors_parse(image)[0][0] == "a"


def test_number_out_of_double_range(check):
    # serde_json rejects numbers that overflow a double, even in ignored fields; underflow is fine
    for value in ("1e999", "-1e999", "1.8e308", "0.1e310", "1" * 310):
        check(with_extra_field(value), r"out of range")
    for value in ("1e-999", "1.7976931348623157e308", "0.1e309", "0.0e99999", "1" * 308):
        image = with_extra_field(value)
        assert not reference_rejects(image)
        assert _core._safetensors_parse(image)[0][0] == "a"


def test_valid_but_unrepresentable_shape(tmp_path):
    # zero elements, so the file is valid; NumPy cannot hold a dimension of 2^63 or more
    for shape in ([0, 2**63 + 5], [2**40, 0, 2**40]):
        image = file_bytes(json.dumps({"a": info("F32", shape, 0, 0)}))
        assert not reference_rejects(image)
        p = tmp_path / "z.safetensors"
        p.write_bytes(image)
        with ggquant.safe_open(p) as f:
            assert f.shape("a") == tuple(shape)
            with pytest.raises(ggquant.SafetensorsError, match="not representable in NumPy"):
                f.get("a")
            with pytest.raises(ggquant.SafetensorsError, match="not representable in NumPy"):
                f.get_float32("a")


# ---- what the reference accepts, ggquant accepts identically


@pytest.mark.parametrize(
    "header",
    [
        "{}",
        "  {}",  # leading whitespace (lets writers page-align the data)
        "{}" + " " * 30,
        '\n\t{"__metadata__":{"k":"v"}} \r\n',
        '{"__metadata__":null}',
        '{"a":{"dtype":"F32","shape":[0, 4],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}',
        '{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}',
        '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"unknown_field":[1,{"y":null}]}}',
        '{"\\u00e9\\ud83d\\ude00":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
        '{"f4":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}',
    ],
)
def test_accepted_like_the_reference(tmp_path, header):
    h = json.loads(header)
    size = max([0] + [v["data_offsets"][1] for k, v in h.items() if k != "__metadata__"])
    image = file_bytes(header, b"\x01" * size)
    ref = {name: d for name, d in safetensors.deserialize(image)}
    p = tmp_path / "ok.safetensors"
    p.write_bytes(image)
    with ggquant.safe_open(p) as f:
        assert f.keys() == sorted(ref)
        for name, d in ref.items():
            assert f.dtype(name) == d["dtype"]
            assert list(f.shape(name)) == d["shape"]
            assert f.get_raw(name).tobytes() == bytes(d["data"])
        md = h.get("__metadata__")
        assert f.metadata() == md


def test_random_header_mutations_agree_with_reference():
    """A short bounded differential fuzz: byte flips in valid headers, ggquant vs the reference."""
    rng = np.random.default_rng(7)
    base = st_np.save(
        {"w": np.ones((2, 3), np.float32), "b": np.arange(3, dtype=np.int16), "s": np.zeros((), np.uint8)},
        metadata={"format": "np"},
    )
    n = struct.unpack("<Q", base[:8])[0]
    alphabet = b'{}[]",:0123456789 aeAFUIdtypshpfs_\\\xff'
    disagreements = []
    for _ in range(3000):
        image = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            pos = 8 + int(rng.integers(0, n))
            image[pos] = alphabet[int(rng.integers(0, len(alphabet)))]
        image = bytes(image)
        try:
            _core._safetensors_parse(image)
            ours = True
        except ggquant.SafetensorsError:
            ours = False
        theirs = not reference_rejects(image)
        if ours and not theirs:
            disagreements.append(image)
        elif theirs and not ours:
            # the one deliberate difference: duplicate keys
            with pytest.raises(ggquant.SafetensorsError, match="duplicate key"):
                _core._safetensors_parse(image)
    assert disagreements == []


def test_long_names_are_clipped_in_messages(check):
    name = "é" * 1000  # 2000 bytes; clipping must not split a character
    header = json.dumps({name: info("U8", [1], 0, 2)}, ensure_ascii=False)
    check(file_bytes(header, b"\0\0"), "invalid tensor info of '" + "é" * 100 + r"\.\.\.'")
    dup = '{"' + name + '":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"' + name + '":{}}'
    check(file_bytes(dup), 'duplicate key "' + "é" * 100 + r'\.\.\."', reference=False)
    check(file_bytes('{"a":{"dtype":"U8","shape":[' + "9" * 300 + '],"data_offsets":[0,0]}}'), r"integer 9{40}\.\.\. does not fit")
