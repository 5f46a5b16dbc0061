"""atheris harnesses for ggquant's Python readers: every input must load or raise a GGQuantError.

Targets (first argument):
  gguf        GGUFReader on the input as a file; then every metadata value, tensor and data view
  safetensors safe_open on the input as a file; then every tensor, its float32 conversion, metadata
  checkpoint  load_checkpoint on a folder whose model.safetensors.index.json is the input and
              which holds two valid shards the index may name
  imatrix     load_imatrix on the input as a file (GGUF or legacy .dat)

Any other exception (or a crash, or a hang past -timeout) is a finding; atheris writes the input
to the artifact prefix. Run (pip install ggquant[fuzz]), e.g. one million executions:
  python tests/fuzz/fuzz_python.py gguf -atheris_runs=1000000 tests/fuzz/corpus_gguf
tests/fuzz/run_atheris.sh runs all four with seed corpora.
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["ggquant"]):
    import numpy as np

    import ggquant
    from ggquant.gguf import GGUFReader

# tmpfs where there is one: each execution writes its input to a file
_DIR = tempfile.mkdtemp(prefix="ggquant-atheris-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
_FILE = os.path.join(_DIR, "input")
_CKPT = os.path.join(_DIR, "ckpt")
_MAX_FLOAT32_BYTES = 1 << 24  # get_float32 allocates 4 bytes per element: bounded for fuzzing


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _touch_array(a: np.ndarray) -> None:
    if a.size:
        a.reshape(-1)[:16].tobytes()


def fuzz_gguf(data: bytes) -> None:
    _write(_FILE, data)
    try:
        r = GGUFReader(_FILE)
    except ggquant.GGQuantError:
        return
    for key, value in r.metadata.items():
        repr(key), r.kv_types[key]
        if isinstance(value, np.ndarray):
            _touch_array(value)
    for t in r.tensors:
        _touch_array(t.data)
        assert r.tensor(t.name).offset == t.offset
        assert t.offset + t.nbytes <= len(data)
    r.close()


def _use_safetensors(f) -> None:
    f.metadata()
    for name in f.keys():
        _touch_array(f.get(name))
        f.shape(name), f.dtype(name)
        if f.nbytes(name) <= _MAX_FLOAT32_BYTES // 8:
            try:
                _touch_array(f.get_float32(name))
            except ggquant.UnsupportedTypeError:
                pass  # F4/F6: no float32 conversion


def fuzz_safetensors(data: bytes) -> None:
    _write(_FILE, data)
    try:
        f = ggquant.safe_open(_FILE)
    except ggquant.GGQuantError:
        return
    with f:
        _use_safetensors(f)


def _make_checkpoint() -> None:
    os.makedirs(_CKPT, exist_ok=True)
    ggquant.save_file({"a": np.arange(4, dtype=np.float32), "b": np.ones((2, 2), np.float16)},
                      os.path.join(_CKPT, "model-00001-of-00002.safetensors"))
    ggquant.save_file({"c": np.zeros(3, np.uint8)}, os.path.join(_CKPT, "model-00002-of-00002.safetensors"))


def fuzz_checkpoint(data: bytes) -> None:
    _write(os.path.join(_CKPT, "model.safetensors.index.json"), data)
    try:
        ck = ggquant.load_checkpoint(_CKPT)
    except ggquant.GGQuantError:
        return
    with ck:
        ck.metadata()
        for name in ck.keys():
            _touch_array(ck[name])
            ck.shard_of(name), ck.shape(name), ck.dtype(name)
            _touch_array(ck.get_float32(name))


def fuzz_imatrix(data: bytes) -> None:
    _write(_FILE, data)
    try:
        im = ggquant.read_imatrix(_FILE)
    except ggquant.GGQuantError:
        return
    for name, w in im.weights.items():
        assert w.dtype == np.float32 and np.isfinite(w).all(), name
    int(im.chunk_count), int(im.chunk_size), [str(d) for d in im.datasets]


TARGETS = {"gguf": fuzz_gguf, "safetensors": fuzz_safetensors, "checkpoint": fuzz_checkpoint, "imatrix": fuzz_imatrix}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer/atheris options] [corpus dirs]")
    target = TARGETS[sys.argv.pop(1)]
    if target is fuzz_checkpoint:
        _make_checkpoint()
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
