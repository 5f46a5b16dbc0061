"""safetensors read and write throughput: ggquant vs the `safetensors` package (NumPy frontend), in one run.

Generates a ~1 GB checkpoint-like dict (F32/F16/BF16 matrices), then
- write: ggquant.save_file vs safetensors.numpy.save_file (same dict, same bytes on disk);
- read: open the file and touch every byte of every tensor (a uint64 sum over each tensor's bytes),
  ggquant.safe_open(...).get (zero-copy views) vs safetensors.safe_open(framework="np").get_tensor.
The file is read from the page cache (warm: each reader runs once untimed first). Each write goes
to a fresh file after an untimed os.sync(); writes are bound by the kernel's page cache, so they
vary a lot on a busy machine: the best of --repeat runs is shown. Files live in /tmp and are
deleted at the end. GB/s counts tensor bytes.
Run: python benchmarks/bench_safetensors_io.py [--gb 1.0] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import ml_dtypes
import numpy as np
import safetensors
import safetensors.numpy as st_np

import ggquant
from _common import best_time


def touch(a: np.ndarray) -> int:
    b = a.reshape(-1).view(np.uint8)
    n8 = b.size // 8 * 8
    return int(b[:n8].view(np.uint64).sum(dtype=np.uint64)) + int(b[n8:].sum())


def read_ggquant(path: str) -> int:
    total = 0
    with ggquant.safe_open(path) as f:
        for k in f.keys():
            total += touch(f.get(k))
    return total


def read_reference(path: str) -> int:
    total = 0
    with safetensors.safe_open(path, framework="np") as f:
        for k in f.keys():
            total += touch(f.get_tensor(k))
    return total


def make_tensors(gb: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    layer = {
        "attn.q.weight": ((2048, 2048), np.float32),
        "attn.k.weight": ((512, 2048), np.float32),
        "mlp.up.weight": ((5632, 2048), np.float16),
        "mlp.down.weight": ((2048, 5632), ml_dtypes.bfloat16),
        "norm.weight": ((2048,), np.float32),
    }
    per_layer = sum(int(np.prod(s)) * np.dtype(t).itemsize for s, t in layer.values())
    n_layers = max(1, round(gb * 1e9 / per_layer))
    block = rng.integers(0, 2**63, size=2**20, dtype=np.uint64).view(np.uint8)  # 8 MB of random bytes
    out = {}
    for i in range(n_layers):
        for name, (shape, dt) in layer.items():
            n = int(np.prod(shape)) * np.dtype(dt).itemsize
            raw = np.resize(np.roll(block, i * 4099 + len(out)), n)
            out[f"model.layers.{i}.{name}"] = raw.view(dt).reshape(shape)
    return out


def timed_write(fn, path: str) -> float:
    """One write to a fresh path, after flushing earlier dirty pages (untimed), so that neither
    writer pays for the other's writeback or for dropping the previous file's pages."""
    if os.path.exists(path):
        os.remove(path)
    os.sync()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gb", type=float, default=1.0, help="checkpoint size in GB")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tensors = make_tensors(args.gb)
    nbytes = sum(a.nbytes for a in tensors.values())
    gb = nbytes / 1e9
    print(f"{len(tensors)} tensors, {gb:.3f} GB of tensor data; best of {args.repeat}")
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        p_ours, p_ref = os.path.join(d, "ours.safetensors"), os.path.join(d, "ref.safetensors")
        # write (alternating, so background load hits both alike)
        t_w_ours = t_w_ref = float("inf")
        for _ in range(args.repeat):
            t_w_ours = min(t_w_ours, timed_write(lambda: ggquant.save_file(tensors, p_ours), p_ours))
            t_w_ref = min(t_w_ref, timed_write(lambda: st_np.save_file(tensors, p_ref), p_ref))
        with open(p_ours, "rb") as a, open(p_ref, "rb") as b:
            same = a.read() == b.read()
        assert same, "ggquant and safetensors wrote different bytes"
        # read (warm page cache)
        expect = read_reference(p_ref)
        assert read_ggquant(p_ref) == expect
        t_r_ours = t_r_ref = float("inf")
        for _ in range(args.repeat):
            t_r_ours = min(t_r_ours, best_time(lambda: read_ggquant(p_ref), 1))
            t_r_ref = min(t_r_ref, best_time(lambda: read_reference(p_ref), 1))
    touch_only = best_time(lambda: [touch(a) for a in tensors.values()], args.repeat)
    print(f"{'':8} {'ggquant':>9} {'safetensors':>12} {'ratio':>7}   (GB/s)")
    print(f"{'write':8} {gb / t_w_ours:9.2f} {gb / t_w_ref:12.2f} {t_w_ref / t_w_ours:6.2f}x   files byte-identical: {same}")
    print(f"{'read':8} {gb / t_r_ours:9.2f} {gb / t_r_ref:12.2f} {t_r_ref / t_r_ours:6.2f}x")
    print(f"(touching the bytes alone, already in memory: {gb / touch_only:.2f} GB/s)")


if __name__ == "__main__":
    main()
