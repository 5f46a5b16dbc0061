"""K-quant quantization speed: ggquant vs ggml's ggml_quantize_chunk, at 1 and 2 threads.

ggml is called through the test oracle (tests/oracle/ggml_oracle.py, ctypes, which releases the
GIL); for 2 threads its rows are split into two halves run on two Python threads. ggquant uses its
own thread pool. Every ratio printed is measured in this run (best of --repeat).

    python benchmarks/bench_kquants.py            # 4096x4096 and 14336x4096
    python benchmarks/bench_kquants.py --quick    # 1024x4096 only
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import ggquant
from _common import best_times, ggml_oracle_or_exit, ggml_runner

TYPES = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one 1024x4096 matrix instead of 4096x4096 and 14336x4096")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--simd", default=None, help="force a SIMD level for ggquant (generic, avx2, avx512)")
    args = ap.parse_args()

    oracle = ggml_oracle_or_exit()

    shapes = [(1024, 4096)] if args.quick else [(4096, 4096), (14336, 4096)]
    cfg = ggquant.config()
    print(f"ggquant SIMD level: {args.simd or cfg.get('simd_active')}  (available {cfg.get('simd_available')})")
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    print(f"{'type':6} {'shape':>11} {'imatrix':7} | {'ggml 1t':>8} {'ours 1t':>8} {'x':>5} | {'ggml 2t':>8} {'ours 2t':>8} {'x':>5} | ours 2t/1t")
    rng = np.random.default_rng(0)
    for rows, cols in shapes:
        x = rng.standard_normal((rows, cols), dtype=np.float32)
        w = (rng.standard_normal((64, cols)) ** 2).sum(axis=0).astype(np.float32)
        for t in args.types.split(","):
            for im in (None, w):
                fns = {}
                for nt in (1, 2):
                    fns["g", nt] = ggml_runner(oracle, t, x, im, nt)
                    fns["o", nt] = lambda nt=nt, t=t, im=im: ggquant.quantize(x, t, imatrix=im, nthreads=nt, simd=args.simd)
                res = best_times(fns, args.repeat)
                print(
                    f"{t:6} {rows:>5}x{cols:<5} {'yes' if im is not None else 'no':7} | "
                    f"{res['g', 1]:8.3f} {res['o', 1]:8.3f} {res['g', 1] / res['o', 1]:5.2f} | "
                    f"{res['g', 2]:8.3f} {res['o', 2]:8.3f} {res['g', 2] / res['o', 2]:5.2f} | "
                    f"{res['o', 1] / res['o', 2]:5.2f}",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
