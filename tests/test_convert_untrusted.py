"""The converters under faults (issue 14, items 7, 10, 12, 13): outputs that are inputs, read-only
and non-UTF-8 destinations, SIGTERM and SIGKILL mid-conversion, a shard truncated while in use."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ggquant
from ggquant.gguf import GGUFReader

pytest.importorskip("torch")
pytest.importorskip("transformers")

import hf_models  # noqa: E402 - needs torch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny") / "model"
    hf_models.build("llama", d)
    return d


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.mark.parametrize("victim", ["model.safetensors", "config.json", "tokenizer.json"])
def test_output_that_is_an_input_is_refused(tiny, victim):
    before = _digests(tiny)
    assert victim in before
    with pytest.raises(ggquant.GGQuantIOError, match="input"):
        ggquant.convert(tiny, tiny / victim, "Q8_0", quiet=True)
    with pytest.raises(ggquant.GGQuantIOError, match="input"):
        ggquant.convert(tiny, os.path.join(tiny, ".", victim), "Q8_0", quiet=True)
    assert _digests(tiny) == before


def test_imatrix_as_output_is_refused(tiny, tmp_path):
    im = tmp_path / "im.dat"
    im.write_bytes(b"\x01\x00\x00\x00")
    with pytest.raises(ggquant.GGQuantIOError, match="input"):
        ggquant.convert(tiny, im, "Q8_0", imatrix=im, quiet=True)
    assert im.read_bytes() == b"\x01\x00\x00\x00"


def test_mlx_output_holding_the_inputs_is_refused(tiny, tmp_path):
    before = _digests(tiny)
    with pytest.raises(ggquant.GGQuantIOError):
        ggquant.convert_mlx(tiny, tiny, "int4", quiet=True)
    with pytest.raises(ggquant.GGQuantIOError):
        ggquant.convert_mlx(tiny, tiny.parent, "int4", quiet=True)
    assert _digests(tiny) == before


@pytest.mark.parametrize("dest", ["/proc/ggquant-test-out", "/sys/ggquant-test-out"])
def test_mlx_into_an_unwritable_place_is_an_io_error(tiny, dest):
    if not os.path.isdir(os.path.dirname(dest)):
        pytest.skip(f"no {os.path.dirname(dest)}")
    with pytest.raises(ggquant.GGQuantIOError, match="cannot"):
        ggquant.convert_mlx(tiny, dest, "int4", quiet=True)


def test_gguf_into_an_unwritable_place_is_an_io_error(tiny):
    with pytest.raises(ggquant.GGQuantIOError):
        ggquant.convert(tiny, "/proc/ggquant-test.gguf", "Q8_0", quiet=True)


def test_non_utf8_model_and_output_names(tiny, tmp_path):
    raw = os.fsencode(tmp_path)
    src = raw + b"/m\xff"
    os.symlink(os.fsencode(tiny), src)
    out = raw + b"/out\xfe.gguf"
    r = ggquant.convert(os.fsdecode(src), os.fsdecode(out), "Q8_0", quiet=True)
    assert os.path.exists(out) and r.file_size == os.path.getsize(out)
    out_b = raw + b"/bytes\xfc.gguf"
    ggquant.convert(src, out_b, "Q8_0", quiet=True, tokenizer_dir=src)  # bytes paths
    assert os.path.getsize(out_b) == r.file_size
    with pytest.raises(ggquant.GGQuantIOError, match="NUL"):
        ggquant.convert(os.fsdecode(src) + "\0x", out_b + b".2", "Q8_0", quiet=True)
    with pytest.raises(ggquant.GGQuantIOError, match="NUL"):
        ggquant.convert(src, os.fsdecode(out_b) + "\0.x", "Q8_0", quiet=True)
    assert len(GGUFReader(out).tensors) > 0
    mlx_out = raw + b"/mlx\xfd"
    ggquant.convert_mlx(os.fsdecode(src), os.fsdecode(mlx_out), "int4", quiet=True)
    assert os.path.exists(mlx_out + b"/model.safetensors")
    assert ggquant.load_checkpoint(mlx_out + b"/model.safetensors").keys()


# ---- signals: a child converts slowly (one tensor every 0.3 s) so it can be signalled mid-write

_CHILD = textwrap.dedent("""
    import importlib, sys, time
    import ggquant
    stream, to_mlx = importlib.import_module("ggquant.convert.stream"), importlib.import_module("ggquant.convert.to_mlx")
    fmt, src, out = sys.argv[1:4]
    slow_q = stream.quantize_batch
    def quantize_batch(*a, **k):
        time.sleep(0.3)
        return slow_q(*a, **k)
    stream.quantize_batch = quantize_batch
    slow_t = ggquant.gguf.GGUFWriter.write_tensor  # small tensors are quantized in one batch: slow the writes too
    def write_tensor(self, *a, **k):
        time.sleep(0.3)
        return slow_t(self, *a, **k)
    ggquant.gguf.GGUFWriter.write_tensor = write_tensor
    slow_w = to_mlx.SafetensorsWriter.write
    def write(self, *a, **k):
        time.sleep(0.3)
        return slow_w(self, *a, **k)
    to_mlx.SafetensorsWriter.write = write
    print("started", flush=True)
    if fmt == "gguf":
        ggquant.convert(src, out, "Q8_0", quiet=True)
    else:
        ggquant.convert_mlx(src, out, "int4", quiet=True)
""")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    here = Path(__file__).parent
    # the ggquant this test imported (the installed one in CI, the source tree in a development set-up)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(ggquant.__file__).parent.parent), str(here), env.get("PYTHONPATH", "")])
    return env


def _temporaries(d: Path) -> list[str]:
    return [p.name for p in d.iterdir() if ".tmp-" in p.name or ".partial-" in p.name]


def _start_and_signal(fmt: str, src: Path, out: Path, sig: int) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, fmt, str(src), str(out)], env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _temporaries(out.parent):  # wait until it is writing
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"the child never started writing: {child.communicate()}")
        time.sleep(0.05)
    time.sleep(0.4)
    child.send_signal(sig)
    child.communicate(timeout=60)  # also closes the pipes
    return child


@pytest.mark.parametrize("fmt", ["gguf", "mlx"])
def test_sigterm_cleans_up_like_sigint(tiny, tmp_path, fmt):
    out = tmp_path / ("out.gguf" if fmt == "gguf" else "out-mlx")
    child = _start_and_signal(fmt, tiny, out, signal.SIGTERM)
    assert child.returncode != 0
    assert _temporaries(tmp_path) == [] and not out.exists()


@pytest.mark.parametrize("fmt", ["gguf", "mlx"])
def test_after_sigkill_the_next_run_removes_the_stale_temporary(tiny, tmp_path, fmt):
    out = tmp_path / ("out.gguf" if fmt == "gguf" else "out-mlx")
    child = _start_and_signal(fmt, tiny, out, signal.SIGKILL)
    assert child.returncode == -signal.SIGKILL
    stale = _temporaries(tmp_path)
    assert stale and not out.exists()  # nothing can clean up after SIGKILL ...
    if fmt == "gguf":
        ggquant.convert(tiny, out, "Q8_0", quiet=True)
    else:
        ggquant.convert_mlx(tiny, out, "int4", quiet=True)
    assert _temporaries(tmp_path) == [] and out.exists()  # ... but the next run does


def test_a_live_writers_temporary_is_left_alone(tiny, tmp_path):
    out = tmp_path / "out.gguf"
    live = tmp_path / f"out.gguf.tmp-{os.getppid()}-0"
    live.write_bytes(b"someone else's")
    ggquant.convert(tiny, out, "Q8_0", quiet=True)
    assert live.read_bytes() == b"someone else's"


# ---- a disk without room: the output is preallocated, so this fails up front, cleanly

_FULL = textwrap.dedent("""
    import resource, sys
    import ggquant
    fmt, src, out = sys.argv[1:4]
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))  # Python ignores SIGXFSZ: EFBIG
    try:
        if fmt == "gguf":
            ggquant.convert(src, out, "F32", quiet=True)
        else:
            ggquant.convert_mlx(src, out, "mlx:int8", quiet=True)
    except ggquant.GGQuantIOError as e:
        print("refused:", e)
""")


@pytest.mark.parametrize("fmt", ["gguf", "mlx"])
def test_full_disk_fails_before_writing_and_leaves_nothing(tiny, tmp_path, fmt):
    out = tmp_path / ("out.gguf" if fmt == "gguf" else "out-mlx")
    p = subprocess.run([sys.executable, "-c", _FULL, fmt, str(tiny), str(out)], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "refused:" in p.stdout and "File too large" in p.stdout, p.stdout
    assert out.name in p.stdout  # the message names the output
    assert list(tmp_path.iterdir()) == []


# ---- a shard truncated by another process while the conversion reads it


def test_truncated_shard_is_an_error_not_sigbus(tiny, tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    for p in tiny.iterdir():
        (src / p.name).write_bytes(p.read_bytes())
    script = textwrap.dedent("""
        import importlib, os, sys
        import ggquant
        stream = importlib.import_module("ggquant.convert.stream")
        src, out = sys.argv[1:3]
        real = stream._source
        calls = []
        def source(*a, **k):
            calls.append(1)
            if len(calls) == 1:  # after the first tensor was read: another process truncates the file
                shard = os.path.join(src, "model.safetensors")
                os.truncate(shard, os.path.getsize(shard) // 2)
            return real(*a, **k)
        stream._source = source
        try:
            ggquant.convert(src, out, "Q8_0", quiet=True)
        except ggquant.GGQuantIOError as e:
            print("GGQuantIOError:", e)
            sys.exit(3)
    """)
    out = tmp_path / "out.gguf"
    r = subprocess.run([sys.executable, "-c", script, str(src), str(out)], env=_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "changed size" in r.stdout and "model.safetensors" in r.stdout
    assert not out.exists() and _temporaries(tmp_path) == []
