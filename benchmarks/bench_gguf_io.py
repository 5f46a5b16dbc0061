"""GGUF read and write throughput: ggquant vs gguf-py (GGUFReader / GGUFWriter), in one run.

Generates a file of about --gb GB (F16 and Q8_0 tensors) in a temporary directory, reads every
tensor and touches all its bytes (a copy into one reused buffer, the same for both readers), and
writes the same tensors with both writers. Prints GB/s and ratios. The files are deleted at the end.
Run: python benchmarks/bench_gguf_io.py [--gb 1.0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import gguf
import numpy as np

import ggquant
from ggquant.gguf import GGUFReader, GGUFWriter


def drop_cache(path: str) -> None:
    # best effort: make both readers start from the same page-cache state (warm, after one read)
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gb", type=float, default=1.0, help="approximate file size in GB")
    args = ap.parse_args()
    rows, cols = 4096, 4096
    x = np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32)
    f16 = x.astype(np.float16)
    q8 = ggquant.quantize(x, "q8_0")
    per_pair = f16.nbytes + q8.nbytes
    n_pairs = max(1, int(args.gb * 1e9 / per_pair))
    tensors = []
    for i in range(n_pairs):
        tensors.append((f"blk.{i}.f16.weight", f16, "f16"))
        tensors.append((f"blk.{i}.q8.weight", q8, "q8_0"))
    total = sum(t[1].nbytes for t in tensors) / 1e9
    with tempfile.TemporaryDirectory() as d:
        ours_path, ref_path = os.path.join(d, "ours.gguf"), os.path.join(d, "ref.gguf")

        t0 = time.perf_counter()
        with GGUFWriter(ours_path) as w:
            w.add_kv("general.architecture", "llama")
            for name, _, t in tensors:
                w.add_tensor_info(name, (rows, cols), t)
            for name, data, _ in tensors:
                w.write_tensor(name, data)
        t_write_ours = time.perf_counter() - t0

        t0 = time.perf_counter()
        gw = gguf.GGUFWriter(ref_path, "llama")
        for name, data, t in tensors:
            if t == "q8_0":
                gw.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                gw.add_tensor(name, data)
        gw.write_header_to_file()
        gw.write_kv_data_to_file()
        gw.write_tensors_to_file()
        gw.close()
        t_write_ref = time.perf_counter() - t0

        buf = np.empty(max(t[1].nbytes for t in tensors), np.uint8)
        drop_cache(ref_path)
        t0 = time.perf_counter()
        r = gguf.GGUFReader(ref_path)
        for t in r.tensors:
            a = np.asarray(t.data).reshape(-1).view(np.uint8)
            np.copyto(buf[: a.size], a)
        t_read_ref = time.perf_counter() - t0
        del r

        drop_cache(ours_path)
        t0 = time.perf_counter()
        r2 = GGUFReader(ours_path)
        for t in r2.tensors:
            a = t.data.reshape(-1).view(np.uint8)
            np.copyto(buf[: a.size], a)
        t_read_ours = time.perf_counter() - t0
        r2.close()

    print(f"file: {len(tensors)} tensors, {total:.2f} GB of tensor data (warm page cache)")
    print(f"read : ggquant {total / t_read_ours:6.2f} GB/s   gguf-py {total / t_read_ref:6.2f} GB/s   ratio {t_read_ref / t_read_ours:5.2f}x")
    print(f"write: ggquant {total / t_write_ours:6.2f} GB/s   gguf-py {total / t_write_ref:6.2f} GB/s   ratio {t_write_ref / t_write_ours:5.2f}x")


if __name__ == "__main__":
    main()
