"""The converter's overlapped tensor loop (ggquant.convert.stream) and one read for many presets.

Every file must be byte-identical to what the plain path gives: a single-preset convert() of the
same model, whatever the batch size, the thread count or how many presets share the pass; errors
must leave no file behind for any preset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import hf_models
import numpy as np
import pytest

import ggquant
from ggquant import GGQuantError
from ggquant.convert import stream, to_mlx
from ggquant.convert.core import Job
from ggquant.hf.archs import OutTensor
from ggquant.plan import PlannedTensor
from ggquant.precision import ModelTensors

_HF_MISSING = next((f"{m} is not installed" for m in ("torch", "transformers", "tokenizers")
                    if importlib.util.find_spec(m) is None), None)
pytestmark = pytest.mark.skipif(_HF_MISSING is not None, reason=str(_HF_MISSING))

PRESETS = ["Q4_K_M", "Q8_0", "F16", "Q6_K"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A bf16 Llama (2-D tensors, q/k permuted) and a Mixtral (3-D experts from per-expert parts)."""
    root = tmp_path_factory.mktemp("stream")
    out = {}
    for arch in ("llama", "mixtral"):
        out[arch] = root / arch
        hf_models.build(arch, out[arch], hidden=256, layers=2, dtype="bfloat16")
    return out


@pytest.fixture(scope="module")
def singles(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], bytes]:
    """Each preset converted alone, with the default batch size and all threads."""
    root = tmp_path_factory.mktemp("single")
    got = {}
    for arch, d in model_dirs.items():
        for p in PRESETS:
            out = root / f"{arch}-{p}.gguf"
            ggquant.convert(d, out, p, quiet=True)
            got[arch, p] = out.read_bytes()
    return got


@pytest.mark.parametrize("arch", ["llama", "mixtral"])
def test_many_presets_in_one_pass_equal_single_runs(model_dirs, singles, tmp_path, arch):
    rs = ggquant.convert_many(model_dirs[arch], tmp_path / "m-{preset}.gguf", PRESETS, quiet=True, nthreads=2)
    assert [r.path.name for r in rs] == [f"m-{p}.gguf" for p in PRESETS]
    for r, p in zip(rs, PRESETS):
        assert r.plan.preset == p
        assert r.path.read_bytes() == singles[arch, p], p
        assert r.file_size == len(singles[arch, p])


@pytest.mark.parametrize("batch_bytes", [1, 4096, 200_000])
def test_batch_size_and_threads_do_not_change_bytes(model_dirs, singles, tmp_path, monkeypatch, batch_bytes):
    # tiny batches cut every tensor into row chunks (expert by expert) and hand many tensors to the writer
    monkeypatch.setattr(stream, "BATCH_BYTES", batch_bytes)
    for arch, d in model_dirs.items():
        for n in (1, 3):
            out = tmp_path / f"{arch}-{n}.gguf"
            ggquant.convert(d, out, "Q4_K_M", quiet=True, nthreads=n)
            assert out.read_bytes() == singles[arch, "Q4_K_M"], (arch, n)


def test_cli_comma_separated_presets(model_dirs, singles, tmp_path):
    from ggquant.cli import main

    status = main(["convert", str(model_dirs["llama"]), "-q", "Q8_0,F16", "-o", str(tmp_path / "c-{preset}.gguf"),
                   "--quiet"])
    assert status == 0
    assert (tmp_path / "c-Q8_0.gguf").read_bytes() == singles["llama", "Q8_0"]
    assert (tmp_path / "c-F16.gguf").read_bytes() == singles["llama", "F16"]
    assert main(["convert", str(model_dirs["llama"]), "-q", "Q8_0,F16", "-o", str(tmp_path / "x.gguf"), "--quiet"]) == 1
    assert not (tmp_path / "x.gguf").exists()


def test_bad_preset_lists(model_dirs, tmp_path):
    d = model_dirs["llama"]
    with pytest.raises(GGQuantError, match="needs \\{preset\\}"):
        ggquant.convert_many(d, tmp_path / "out.gguf", ["Q8_0", "F16"])
    with pytest.raises(GGQuantError, match="more than once"):
        ggquant.convert_many(d, tmp_path / "o-{preset}.gguf", ["Q8_0", "Q8_0"])
    with pytest.raises(GGQuantError, match="at least one"):
        ggquant.convert_many(d, tmp_path / "o-{preset}.gguf", [])
    dry = ggquant.convert_many(d, None, ["Q8_0", "Q4_K_M"], dry_run=True)
    assert [r.plan.preset for r in dry] == ["Q8_0", "Q4_K_M"] and all(r.path is None for r in dry)
    assert list(tmp_path.iterdir()) == []


def test_error_mid_pass_leaves_no_file(model_dirs, tmp_path, monkeypatch):
    # a NaN in the last layer: earlier tensors are already with the writer thread when it is found
    monkeypatch.setattr(stream, "BATCH_BYTES", 4096)
    src = model_dirs["llama"]
    d = tmp_path / "nan"
    d.mkdir()
    for f in src.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    st = ggquant.safe_open(d / "model.safetensors")
    tensors = {k: np.array(st[k]) for k in st.keys()}  # noqa: SIM118
    st.close()
    name = "model.layers.1.mlp.down_proj.weight"
    tensors[name].view(np.uint16).reshape(-1)[5] = 0x7FC0  # bfloat16 NaN
    ggquant.save_file(tensors, d / "model.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ggquant.NonFiniteError, match="blk.1.ffn_down.weight.*NaN"):
        ggquant.convert_many(d, out / "n-{preset}.gguf", ["Q8_0", "Q4_K_M"], quiet=True)
    assert list(out.iterdir()) == []


class _Collect:
    """A sink keeping each tensor's bytes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.closed = self.aborted = False

    def write_tensor(self, name: str, data: np.ndarray) -> None:
        self.data[name] = np.ascontiguousarray(data).tobytes()

    def tensor_buffer(self, name: str) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


def _raw_pass(tensors, types, nthreads=2):
    """Run one pass of ``tensors`` ((name, shape, parts)) to each planned type list in ``types``."""
    ots = [OutTensor(n, shape, parts) for n, shape, parts in tensors]
    sinks, jobs = [], []
    for ts in types:
        planned = [PlannedTensor(ot.name, ot.shape, ggquant.GGMLType[t],
                                 int(np.prod(ot.shape[:-1])) * ggquant.row_size(t, ot.shape[-1])) for ot, t in zip(ots, ts)]
        sinks.append(_Collect())
        jobs.append(Job(planned, sinks[-1]))
    stream.run_pass(ots, jobs, None, nthreads=nthreads, quiet=True)
    return sinks


@pytest.mark.parametrize("batch_bytes", [1, 5000, 64 << 20])
def test_raw_blocks_copied_or_requantized(rng, monkeypatch, batch_bytes):
    # a stored quantized tensor: copied as it is to its own type, dequantized and requantized to another
    monkeypatch.setattr(stream, "BATCH_BYTES", batch_bytes)
    x = rng.standard_normal((3, 8, 256)).astype(np.float32)
    q4 = ggquant.quantize(x[0], "q4_K")
    mx = np.stack([ggquant.quantize(e, "mxfp4") for e in x])  # (experts, rows, row bytes)
    h16 = x[1].astype(np.float16)
    h16[2, 7] = np.nan  # an F16 -> F16 copy is not checked (llama-quantize copies it byte for byte)
    tensors = [("a.weight", (8, 256), [lambda: (q4, ggquant.GGMLType.Q4_K)]),
               ("experts_whole", (3, 8, 256), [lambda: (mx, ggquant.GGMLType.MXFP4)]),
               ("experts_parts", (3, 8, 256), [lambda e=e: (mx[e], ggquant.GGMLType.MXFP4) for e in range(3)]),
               ("h.weight", (8, 256), [lambda: (h16, ggquant.GGMLType.F16)])]
    same, other = _raw_pass(tensors, [["Q4_K", "MXFP4", "MXFP4", "F16"], ["Q8_0", "Q8_0", "Q4_K", "F16"]])
    assert same.closed and other.closed
    assert same.data["a.weight"] == q4.tobytes()
    assert same.data["experts_whole"] == same.data["experts_parts"] == mx.tobytes()
    assert same.data["h.weight"] == h16.tobytes()
    deq_q4 = ggquant.dequantize(q4, "q4_K", (8, 256))
    assert deq_q4.shape == (8, 256) and not np.array_equal(deq_q4, x[0])  # the requantized values are the decoded ones
    assert other.data["a.weight"] == ggquant.quantize(deq_q4, "q8_0").tobytes()
    deq_mx = [ggquant.dequantize(mx[e], "mxfp4", (8, 256)) for e in range(3)]
    assert other.data["experts_whole"] == b"".join(ggquant.quantize(d, "q8_0").tobytes() for d in deq_mx)
    assert other.data["experts_parts"] == b"".join(ggquant.quantize(d, "q4_K").tobytes() for d in deq_mx)


def test_raw_f16_and_bf16_go_to_the_kernels_as_stored(rng):
    x = rng.standard_normal((4, 64)).astype(np.float32)
    h = x.astype(np.float16)
    b = (x.view(np.uint32) >> 16).astype(np.uint16)
    (sink,) = _raw_pass([("h", (4, 64), [lambda: (h, ggquant.GGMLType.F16)]),
                         ("b", (4, 64), [lambda: (b.view(np.uint8), ggquant.GGMLType.BF16)])], [["Q8_0", "Q4_0"]])
    assert sink.data["h"] == ggquant.quantize(h, "q8_0").tobytes()
    bf = (b.astype(np.uint32) << 16).view(np.float32)
    assert sink.data["b"] == ggquant.quantize(bf, "q4_0").tobytes()


def test_raw_blocks_of_the_wrong_size_are_refused(rng):
    q = ggquant.quantize(rng.standard_normal((2, 64)).astype(np.float32), "q8_0")
    with pytest.raises(ggquant.FormatError, match=r"t\).*not whole rows of q8_0"):
        _raw_pass([("t", (2, 64), [lambda: (q.reshape(-1)[:-3], ggquant.GGMLType.Q8_0)])], [["Q4_0"]])
    with pytest.raises(GGQuantError, match="more bytes than planned"):
        _raw_pass([("t", (1, 64), [lambda: (q, ggquant.GGMLType.Q8_0)])], [["Q8_0"]])


def test_mlx_error_while_a_write_is_pending_leaves_no_directory(model_dirs, tmp_path, monkeypatch):
    # convert_mlx's writer thread holds the previous tensor's write when the next quantization fails
    calls = []
    kernels = to_mlx._mlx.quantize_raw

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == 4:
            raise ggquant.NonFiniteError("planted")
        return kernels(*a, **k)

    monkeypatch.setattr(to_mlx._mlx, "quantize_raw", failing)
    with pytest.raises(ggquant.NonFiniteError, match="planted"):
        ggquant.convert_mlx(model_dirs["llama"], tmp_path / "mlx", "int4", quiet=True)
    assert len(calls) == 4
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(to_mlx._mlx, "quantize_raw", kernels)
    r = ggquant.convert_mlx(model_dirs["llama"], tmp_path / "ok", "int4", quiet=True, nthreads=1)
    assert (tmp_path / "ok" / "model.safetensors").stat().st_size == r.total_size + \
        8 + int.from_bytes((tmp_path / "ok" / "model.safetensors").read_bytes()[:8], "little")
    # 1 thread (the writer faults in the next tensor's pages on the spare core) and 3 give the same bytes
    ggquant.convert_mlx(model_dirs["llama"], tmp_path / "ok3", "int4", quiet=True, nthreads=3)
    assert (tmp_path / "ok3" / "model.safetensors").read_bytes() == (tmp_path / "ok" / "model.safetensors").read_bytes()


def test_precision_reads_raw_parts_as_their_values(rng):
    # the planner's tensor reader (ggquant.precision) decodes parts stored as ggml blocks
    x = rng.standard_normal((2, 4, 64)).astype(np.float32)
    mx = np.stack([ggquant.quantize(e, "mxfp4") for e in x])
    ots = [OutTensor("whole", (2, 4, 64), [lambda: (mx, ggquant.GGMLType.MXFP4)]),
           OutTensor("parts", (2, 4, 64), [lambda e=e: (mx[e], ggquant.GGMLType.MXFP4) for e in range(2)])]
    src = type("Src", (), {"tensors": ots})()
    mt = ModelTensors(Path("."), src)
    want = [ggquant.dequantize(mx[e], "mxfp4", (4, 64)) for e in range(2)]
    for i in range(2):
        got = mt.rows(i)
        assert len(got) == 2 and all(np.array_equal(g, w) for g, w in zip(got, want))
