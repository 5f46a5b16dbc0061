"""imatrix files: legacy .dat (built with struct.pack from llama-imatrix's layout) and GGUF (built
with gguf-py's GGUFWriter), read into the weights llama-quantize computes from them."""

from __future__ import annotations

import struct

import gguf
import numpy as np
import pytest

import ggquant


def legacy_bytes(entries: list[tuple[str, int, np.ndarray]], trailer: tuple[int, str] | None = None) -> bytes:
    """llama-imatrix's legacy layout: n_entries, then (len, name, ncall, nval, floats)..., then
    optionally the chunk count and (len, dataset name)."""
    out = [struct.pack("<i", len(entries))]
    for name, ncall, values in entries:
        raw = name.encode()
        vals = np.asarray(values, "<f4")
        out += [struct.pack("<i", len(raw)), raw, struct.pack("<ii", ncall, vals.size), vals.tobytes()]
    if trailer is not None:
        chunks, dataset = trailer
        out += [struct.pack("<ii", chunks, len(dataset.encode())), dataset.encode()]
    return b"".join(out)


def write_gguf_imatrix(
    path,
    entries: dict[str, tuple[np.ndarray, np.ndarray]],
    extra: dict[str, np.ndarray] | None = None,
    metadata: bool = True,
) -> None:
    """As llama-imatrix writes it: <name>.in_sum2 (ggml ne = (n_cols, n_experts)) and <name>.counts
    (ne = (1, n_experts)), both F32, plus the imatrix.* keys."""
    w = gguf.GGUFWriter(str(path), arch="llama")
    if metadata:
        w.add_string("general.type", "imatrix")
        w.add_array("imatrix.datasets", ["calib.txt"])
        w.add_uint32("imatrix.chunk_count", 100)
        w.add_uint32("imatrix.chunk_size", 512)
    for name, (sums, counts) in entries.items():
        w.add_tensor(f"{name}.in_sum2", np.asarray(sums, np.float32))
        w.add_tensor(f"{name}.counts", np.asarray(counts, np.float32))
    for name, arr in (extra or {}).items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- legacy


def test_legacy_values_divided_by_ncall(tmp_path):
    rng = np.random.default_rng(0)
    a = (rng.random(64) * 50).astype(np.float32)
    moe = (rng.random(4 * 32) * 5).astype(np.float32)  # 4 experts of 32 columns, stored flat
    zero_calls = rng.random(16).astype(np.float32)
    p = tmp_path / "imatrix.dat"
    p.write_bytes(
        legacy_bytes(
            [("blk.0.attn_q.weight", 7, a), ("blk.0.ffn_down_exps.weight", 3, moe), ("output.weight", 0, zero_calls)],
            trailer=(42, "wiki.train.raw"),
        )
    )
    im = ggquant.read_imatrix(p)
    assert im.format == "legacy"
    assert im.chunk_count == 42 and im.datasets == ["wiki.train.raw"]
    # llama-quantize: e[i] = sums[i] / ncall in float; the raw values when ncall is 0
    np.testing.assert_array_equal(im.weights["blk.0.attn_q.weight"], a / np.float32(7))
    np.testing.assert_array_equal(im.weights["blk.0.ffn_down_exps.weight"], moe / np.float32(3))
    np.testing.assert_array_equal(im.weights["output.weight"], zero_calls)
    assert all(w.dtype == np.float32 for w in im.weights.values())
    w = ggquant.imatrix_for(im.weights, "blk.0.ffn_down_exps.weight", (4, 10, 32))
    np.testing.assert_array_equal(w[2], moe[64:96] / np.float32(3))


@pytest.mark.parametrize(("tail", "chunks"), [(b"", 0), (struct.pack("<i", 9), 9), (struct.pack("<ii", 5, 0), 5)])
def test_legacy_optional_trailer(tmp_path, tail, chunks):
    p = tmp_path / "a.dat"
    p.write_bytes(legacy_bytes([("t", 2, np.ones(8, np.float32))]) + tail)
    im = ggquant.read_imatrix(p)
    assert im.weights["t"].tolist() == [0.5] * 8
    assert (im.chunk_count, im.datasets) == (chunks, [])


def test_legacy_malformed(tmp_path):
    good = legacy_bytes([("a", 1, np.ones(4, np.float32)), ("b", 1, np.ones(4, np.float32))], trailer=(3, "d.txt"))
    p = tmp_path / "m.dat"
    entries_end = len(good) - (8 + len("d.txt"))
    for cut in range(1, len(good)):
        if cut in (entries_end, entries_end + 4, len(good)):
            continue  # these prefixes are complete files (no trailer / chunk count only)
        p.write_bytes(good[:cut])
        with pytest.raises(ggquant.FormatError, match="imatrix"):
            ggquant.read_imatrix(p)
    for bad, match in [
        (struct.pack("<i", 0), "0 entries"),
        (legacy_bytes([("a", 1, np.ones(2, np.float32)), ("a", 1, np.ones(2, np.float32))]), "'a' appears twice"),
        (good + b"\0", "unexpected bytes"),
        (struct.pack("<ii1sii", 1, 1, b"x", 1, 1000), "'x' claims 1000 values"),
    ]:
        p.write_bytes(bad)
        with pytest.raises(ggquant.FormatError, match=match):
            ggquant.read_imatrix(p)


def test_missing_file_is_an_io_error(tmp_path):
    with pytest.raises(ggquant.GGQuantIOError, match="cannot read imatrix"):
        ggquant.load_imatrix(tmp_path / "nope.dat")


def test_non_finite_weight_names_the_tensor(tmp_path):
    p = tmp_path / "nan.dat"
    p.write_bytes(legacy_bytes([("blk.3.ffn_up.weight", 1, np.array([1, np.nan], np.float32))]))
    with pytest.raises(ggquant.NonFiniteError, match=r"blk\.3\.ffn_up\.weight"):
        ggquant.load_imatrix(p)


# ---- GGUF


def test_gguf_sums_divided_by_counts(tmp_path):
    rng = np.random.default_rng(1)
    dense = (rng.random((1, 48)) * 100).astype(np.float32)  # one matrix: counts (1, 1)
    experts = (rng.random((4, 32)) * 100).astype(np.float32)  # 4 experts
    counts = np.array([[512], [0], [1023.5], [0.4]], np.float32)  # expert 1 and 3 never ran
    p = tmp_path / "imatrix.gguf"
    write_gguf_imatrix(
        p,
        {
            "blk.0.attn_k.weight": (dense, np.array([[300]], np.float32)),
            "blk.0.ffn_gate_exps.weight": (experts, counts),
        },
    )
    im = ggquant.read_imatrix(p)
    assert im.format == "gguf"
    assert (im.datasets, im.chunk_count, im.chunk_size) == (["calib.txt"], 100, 512)
    # llama-quantize: count = lround(counts[j]); weights = in_sum2 / count, or 1 where count is 0
    np.testing.assert_array_equal(im.weights["blk.0.attn_k.weight"], dense[0] / np.float32(300))
    want = np.ones((4, 32), np.float32)
    want[0] = experts[0] / np.float32(512)
    want[2] = experts[2] / np.float32(1024)  # lround(1023.5) = 1024
    np.testing.assert_array_equal(im.weights["blk.0.ffn_gate_exps.weight"], want)
    assert ggquant.imatrix_for(im.weights, "blk.0.ffn_gate_exps.weight", (4, 64, 32)).shape == (4, 32)
    assert ggquant.imatrix_for(im.weights, "blk.0.attn_k.weight", (7, 48)).shape == (48,)


def test_gguf_without_metadata_still_reads(tmp_path):
    p = tmp_path / "bare.gguf"
    write_gguf_imatrix(p, {"w": (np.full((1, 8), 6, np.float32), np.array([[2]], np.float32))}, metadata=False)
    im = ggquant.read_imatrix(p)
    assert im.weights["w"].tolist() == [3.0] * 8
    assert (im.datasets, im.chunk_count) == ([], 0)


@pytest.mark.parametrize(
    ("entries", "extra", "match"),
    [
        ({}, {"blk.0.attn_q.weight": np.ones((2, 8), np.float32)}, r"'blk\.0\.attn_q\.weight' is neither"),
        (
            {"a": (np.ones((1, 8)), np.ones((1, 1)))},
            {"b.in_sum2": np.ones((1, 8), np.float32)},
            r"'b' has 'b\.in_sum2' but not its counts",
        ),
        (
            {"a": (np.ones((1, 8)), np.ones((1, 1)))},
            {"c.counts": np.ones((1, 1), np.float32)},
            r"'c' has 'c\.counts' but not its in_sum2",
        ),
        ({"d": (np.ones((1, 10)), np.ones((3, 1)))}, {}, r"'d' has 10 sums for 3 counts"),
        (
            {},
            {"e.in_sum2": np.ones((1, 8), np.float16), "e.counts": np.ones((1, 1), np.float32)},
            r"'e\.in_sum2' has ggml type F16",
        ),
    ],
)
def test_gguf_mismatched_names_and_sizes(tmp_path, entries, extra, match):
    p = tmp_path / "bad.gguf"
    write_gguf_imatrix(p, entries, extra)
    with pytest.raises(ggquant.GGUFError, match=match):
        ggquant.load_imatrix(p)


def test_gguf_truncated(tmp_path):
    p = tmp_path / "t.gguf"
    write_gguf_imatrix(p, {"w": (np.ones((1, 64), np.float32), np.ones((1, 1), np.float32))})
    data = p.read_bytes()
    for cut in (6, 30, len(data) // 2, len(data) - 40):  # the last 28 bytes are alignment padding
        p.write_bytes(data[:cut])
        with pytest.raises(ggquant.GGUFError):
            ggquant.load_imatrix(p)


# ---- picking the weights of one tensor


def test_imatrix_for_unknown_or_mismatched():
    im = {"blk.0.attn_q.weight": np.ones(64, np.float32), "blk.0.ffn_up_exps.weight": np.ones(4 * 16, np.float32)}
    with pytest.raises(ggquant.GGQuantError, match=r"no entry for tensor 'blk\.0\.attn_k\.weight'.*attn_q"):
        ggquant.imatrix_for(im, "blk.0.attn_k.weight", (64, 64))
    with pytest.raises(ggquant.ShapeError, match=r"'blk\.0\.attn_q\.weight'.*64 weights, expected 128"):
        ggquant.imatrix_for(im, "blk.0.attn_q.weight", (64, 128))
    with pytest.raises(ggquant.ShapeError, match=r"expected 8 x 16"):
        ggquant.imatrix_for(im, "blk.0.ffn_up_exps.weight", (8, 32, 16))
    assert ggquant.imatrix_for(im, "blk.0.ffn_up_exps.weight", (4, 32, 16)).shape == (4, 16)


def test_loaded_weights_drive_quantize(tmp_path):
    """The loaded weights are what quantize takes: they change IQ4_XS bytes as an imatrix should."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 256), dtype=np.float32)
    sums = (rng.standard_normal((64, 256)) ** 2).sum(axis=0).astype(np.float32)[None]
    p = tmp_path / "q.gguf"
    write_gguf_imatrix(p, {"w": (sums, np.array([[64]], np.float32))})
    w = ggquant.imatrix_for(ggquant.load_imatrix(p), "w", x.shape)
    q = ggquant.quantize(x, "iq4_xs", imatrix=w)
    assert np.array_equal(q, ggquant.quantize(x, "iq4_xs", imatrix=sums[0] / np.float32(64)))
    assert not np.array_equal(q, ggquant.quantize(x, "iq4_xs"))
