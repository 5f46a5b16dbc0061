"""Opening a GGUF file with very many tensor infos: ggquant's GGUFReader vs ggml's own reader.

Builds a file of --n tensor infos (zero-element F32 tensors named ``t0000000`` ..., 39 bytes per
info: about 39 MB for 10^6), then opens it in fresh subprocesses, one per reader and repeat:
ggml's ``gguf_init_from_file`` (libggml-base from llama-cpp-python, via ctypes, ``no_alloc``),
ggquant's ``GGUFReader`` (then also iterating over every tensor's name and shape), and gguf-py's
``GGUFReader``. Each subprocess reports its wall time to open (and, for ggquant, to open and
iterate) and its peak RSS (``ru_maxrss``, including the Python interpreter and NumPy, the same
for all three). Prints the best of --repeat runs and the ratios ggquant / ggml.
Run: python benchmarks/bench_gguf_many_tensors.py [--n 1000000] [--repeat 3] [--no-gguf-py]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

_CHILD = r"""
import json, resource, sys, time
which, path = sys.argv[1], sys.argv[2]
import numpy as np
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if which == "ggml":
    import ctypes, importlib.util, os
    spec = importlib.util.find_spec("llama_cpp")
    lib = ctypes.CDLL(os.path.join(next(iter(spec.submodule_search_locations)), "lib", "libggml-base.so"))
    class P(ctypes.Structure):
        _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]
    lib.gguf_init_from_file.restype = ctypes.c_void_p
    lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, P]
    lib.gguf_get_n_tensors.restype = ctypes.c_int64
    lib.gguf_get_n_tensors.argtypes = [ctypes.c_void_p]
    ctx = lib.gguf_init_from_file(path.encode(), P(True, None))
    assert ctx, "ggml refused the file"
    n = lib.gguf_get_n_tensors(ctx)
    t_open = time.perf_counter() - t0
elif which == "ggquant":
    from ggquant.gguf import GGUFReader
    r = GGUFReader(path)
    t_open = time.perf_counter() - t0
    n = sum(1 for t in r.tensors if t.name and t.shape is not None)
else:
    import gguf
    r = gguf.GGUFReader(path)
    n = len(r.tensors)
    t_open = time.perf_counter() - t0
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": int(n), "open": t_open, "s": dt, "rss_mb": rss / 1024, "base_mb": base / 1024}))
"""


def build(path: str, n: int) -> None:
    """A GGUF v3 file with one KV and ``n`` zero-element F32 tensor infos (all at offset 0)."""
    names = np.char.encode(np.char.add("t", np.char.zfill(np.arange(n).astype(str), 7)))
    rec = np.zeros(n, dtype=[("len", "<u8"), ("name", "S8"), ("ndim", "<u4"), ("ne", "<i8"), ("type", "<i4"), ("off", "<u8")])
    rec["len"], rec["name"], rec["ndim"] = 8, names, 1
    with open(path, "wb") as f:
        f.write(b"GGUF" + np.array([3], "<u4").tobytes() + np.array([n, 1], "<i8").tobytes())
        key = b"general.architecture"
        f.write(np.array([len(key)], "<u8").tobytes() + key + np.array([8], "<i4").tobytes())
        f.write(np.array([5], "<u8").tobytes() + b"llama")
        f.write(rec.tobytes())
        f.write(b"\0" * (-f.tell() % 32))


def run(which: str, path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, which, path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1_000_000, help="tensor infos in the file")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-gguf-py", action="store_true", help="skip gguf-py (slow)")
    args = ap.parse_args()
    readers = ["ggml", "ggquant"] + ([] if args.no_gguf_py else ["gguf-py"])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "many.gguf")
        build(path, args.n)
        print(f"file: {args.n} tensor infos, {os.path.getsize(path) / 1e6:.1f} MB", file=sys.stderr)
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for which in readers:
                r = run(which, path)
                assert r["n"] == args.n, (which, r)
                prev = best.get(which, r)
                best[which] = {k: min(r[k], prev[k]) for k in r}
    print(f"{'reader':10s} {'open s':>8s} {'open+iterate s':>15s} {'peak RSS MB':>12s} {'(interpreter MB)':>17s}")
    for which in readers:
        b = best[which]
        it = f"{b['s']:15.2f}" if which == "ggquant" else f"{'-':>15s}"
        print(f"{which:10s} {b['open']:8.2f} {it} {b['rss_mb']:12.0f} {b['base_mb']:17.0f}")
    g, o = best["ggml"], best["ggquant"]
    print(f"ggquant / ggml: open time {o['open'] / g['open']:.2f}x, open+iterate {o['s'] / g['open']:.2f}x, "
          f"peak RSS {o['rss_mb'] / g['rss_mb']:.2f}x")


if __name__ == "__main__":
    main()
