"""quantize_batch: many jobs in one pass, sources read in place (bf16/f16/FP8/f32, memory maps), blocks
written into caller buffers. Its bytes must equal ggquant.quantize on each job alone (and so ggml's),
whatever the thread count, and its errors must name the job."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import ggquant
from ggquant.batch import QuantJob, quantize_batch

try:
    from oracle import ggml_oracle
except ImportError:  # pragma: no cover - depends on how the oracle is installed
    ggml_oracle = None
_ORACLE = ggml_oracle.get_oracle() if ggml_oracle is not None else None

# (type, rows, row length, source dtype): big and tiny jobs mixed, as a model's tensors are
JOBS = [("q4_K", 48, 512, "bfloat16"), ("f32", 1, 256, "bfloat16"), ("q8_0", 7, 96, "float16"),
        ("q6_K", 3, 256, "float32"), ("bf16", 2, 64, "bfloat16"), ("f16", 5, 64, "float32"),
        ("iq4_xs", 9, 256, "bfloat16"), ("q4_0", 1, 32, "float16")]


def _sources(rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for _, rows, n, dt in JOBS:
        x = rng.standard_normal((rows, n), dtype=np.float32) * 0.05
        out.append(x.astype(ml_dtypes.bfloat16) if dt == "bfloat16" else x.astype(dt))
    return out


def _expected(srcs: list[np.ndarray]) -> bytes:
    return b"".join(ggquant.quantize(x, t).tobytes() for (t, *_), x in zip(JOBS, srcs))


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_one_buffer_matches_single_calls(rng: np.random.Generator, nthreads: int) -> None:
    srcs = _sources(rng)
    want = _expected(srcs)
    out = np.full(len(want) + 5, 0xAB, np.uint8)
    jobs, off = [], 3
    for (t, rows, n, _), x in zip(JOBS, srcs):
        jobs.append(QuantJob(x, t, out, offset=off, name=t))
        off += rows * ggquant.row_size(t, n)
    sizes = quantize_batch(jobs, nthreads=nthreads)
    assert sum(sizes) == len(want)
    assert out[3:-2].tobytes() == want
    assert out[:3].tolist() == [0xAB] * 3 and out[-2:].tolist() == [0xAB] * 2  # nothing outside the jobs


@pytest.mark.skipif(_ORACLE is None, reason="ggml oracle not available (tests/oracle)")
def test_bf16_rows_match_ggml(rng: np.random.Generator) -> None:
    x = (rng.standard_normal((33, 768), dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
    w = rng.random(768, dtype=np.float32) + 0.1
    for t, imx in (("q4_K", None), ("q5_K", w), ("q8_0", None)):
        out = bytearray(33 * ggquant.row_size(t, 768))
        quantize_batch([QuantJob(x.view(np.uint16), t, out, dtype="BF16", imatrix=imx)], nthreads=2)
        ref = _ORACLE.quantize_chunk(int(ggquant.resolve_type(t)), x.astype(np.float32), imx)
        assert bytes(out) == ref.tobytes(), t


@pytest.mark.parametrize("fmt, dt", [("F8_E4M3", ml_dtypes.float8_e4m3fn), ("F8_E5M2", ml_dtypes.float8_e5m2)])
def test_fp8_sources_widen_exactly(rng: np.random.Generator, fmt: str, dt: type) -> None:
    x = (rng.standard_normal((4, 256), dtype=np.float32) * 3).astype(dt)
    x.reshape(-1)[:256].view(np.uint8)[:] = np.arange(256, dtype=np.uint8)  # every byte value once
    finite = np.isfinite(x.astype(np.float32))
    x.view(np.uint8)[~finite] = 0  # NaN/Inf bytes are tested below
    for t in ("q8_0", "f32", "q4_K"):
        want = ggquant.quantize(x.astype(np.float32), t).tobytes()
        a, b = bytearray(len(want)), bytearray(len(want))
        quantize_batch([QuantJob(x.view(np.uint8), t, a, dtype=fmt)])
        quantize_batch([QuantJob(x, t, b)])  # the ml_dtypes dtype says the same
        assert bytes(a) == want and bytes(b) == want, t
    nan = np.frombuffer(b"\x7f" if fmt == "F8_E4M3" else b"\x7e", np.uint8)
    y = x.view(np.uint8).copy()
    y[2, 7] = nan[0]
    with pytest.raises(ggquant.NonFiniteError, match="w8: input row 2, column 7 is NaN"):
        quantize_batch([QuantJob(y, "q8_0", bytearray(4 * 272), dtype=fmt, name="w8")])


def test_reads_a_read_only_memory_map(tmp_path, rng: np.random.Generator) -> None:
    x = (rng.standard_normal((16, 256), dtype=np.float32)).astype(ml_dtypes.bfloat16)
    p = tmp_path / "w.bin"
    p.write_bytes(b"\0" * 24 + x.tobytes())
    mm = np.memmap(p, dtype=np.uint16, mode="r", offset=24, shape=x.shape)
    out = np.zeros(16 * ggquant.row_size("q6_K", 256), np.uint8)
    quantize_batch([QuantJob(mm, "q6_K", out, dtype="BF16")])
    assert out.tobytes() == ggquant.quantize(x, "q6_K").tobytes()


def test_errors_name_the_job(rng: np.random.Generator) -> None:
    x = rng.standard_normal((4, 64), dtype=np.float32)
    good = QuantJob(x, "q8_0", bytearray(4 * 68), name="a")
    with pytest.raises(ggquant.ShapeError, match="b: the output buffer of 10 bytes cannot hold 272"):
        quantize_batch([good, QuantJob(x, "q8_0", bytearray(10), name="b")])
    with pytest.raises(ggquant.ShapeError, match="c:.*offset 9"):
        quantize_batch([QuantJob(x, "q8_0", bytearray(280), offset=9, name="c")])
    with pytest.raises(ggquant.GGQuantError, match="d: the output must be a writable buffer"):
        quantize_batch([QuantJob(x, "q8_0", bytes(272), name="d")])
    with pytest.raises(ggquant.ShapeError, match="block size"):
        quantize_batch([QuantJob(x[:, :48], "q4_K", bytearray(1000), name="e")])
    y = x.copy()
    y[3, 5], y[1, 9] = np.inf, np.nan
    z = x.copy()
    z[0, 0] = np.nan
    for n in (1, 2):  # the first bad row of the first bad job, whatever the threads
        with pytest.raises(ggquant.NonFiniteError, match="g: input row 1, column 9 is NaN"):
            quantize_batch([good, QuantJob(y, "q8_0", bytearray(272), name="g"),
                            QuantJob(z, "q8_0", bytearray(272), name="h")], nthreads=n)
    out = bytearray(272)
    quantize_batch([QuantJob(y, "q8_0", out)], allow_nonfinite=True)
    assert bytes(out) == ggquant.quantize(y, "q8_0", allow_nonfinite=True).tobytes()
    with pytest.raises(ggquant.GGQuantError, match="unknown source dtype"):
        quantize_batch([QuantJob(x, "q8_0", bytearray(272), dtype="I8")])


_NEEDS_IMATRIX = [t.name for t in ggquant.GGMLType if ggquant.type_info(t).requires_imatrix and ggquant.type_info(t).can_quantize]


@pytest.mark.skipif(not _NEEDS_IMATRIX, reason="this build quantizes no type that requires an imatrix")
def test_imatrix_required() -> None:
    with pytest.raises(ggquant.GGQuantError, match="f:.*requires an importance matrix"):
        quantize_batch([QuantJob(np.zeros((1, 256), np.float32), _NEEDS_IMATRIX[0], bytearray(1000), name="f")])
