"""IQ4_XS / IQ4_NL quantization speed: ggquant vs ggml's ggml_quantize_chunk, at 1 and 2 threads.

ggml is called through the test oracle (tests/oracle/ggml_oracle.py, ctypes, which releases the
GIL); for 2 threads its rows are split into two halves run on two Python threads. ggquant uses its
own thread pool. Every ratio printed is measured in this run (best of --repeat); the bytes are
checked equal once per row of the table.

    python benchmarks/bench_iq.py            # 4096x4096 and 14336x4096
    python benchmarks/bench_iq.py --quick    # 1024x4096 only
"""

from __future__ import annotations

import argparse
import functools
import sys

import numpy as np

import ggquant
from _common import best_time, ggml_oracle_or_exit, ggml_runner

TYPES = ["iq4_xs", "iq4_nl"]


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
    head = f"{'ggml 1t':>8} {'ours 1t':>8} {'x':>5} | {'ggml 2t':>8} {'ours 2t':>8} {'x':>5}"
    print(f"{'type':6} {'shape':>11} {'imatrix':7} | {head} | ours 2t/1t")
    rng = np.random.default_rng(0)
    for rows, cols in shapes:
        x = rng.standard_normal((rows, cols), dtype=np.float32)
        w = (rng.standard_normal((64, cols)) ** 2).sum(axis=0).astype(np.float32)
        for t in args.types.split(","):
            for im in (None, w):
                ref = (
                    np.asarray(oracle.quantize_chunk(int(ggquant.resolve_type(t)), x, im))
                    .view(np.uint8)
                    .reshape(rows, -1)
                )
                if not np.array_equal(ref, ggquant.quantize(x, t, imatrix=im, simd=args.simd)):
                    sys.exit(f"{t}: bytes differ from ggml")
                res = {}
                for nt in (1, 2):
                    res["g", nt] = best_time(ggml_runner(oracle, t, x, im, nt), args.repeat)
                    ours = functools.partial(ggquant.quantize, x, t, imatrix=im, nthreads=nt, simd=args.simd)
                    res["o", nt] = best_time(ours, args.repeat)
                print(
                    f"{t:6} {rows:>5}x{cols:<5} {'yes' if im is not None else 'no':7} | "
                    f"{res['g', 1]:8.3f} {res['o', 1]:8.3f} {res['g', 1] / res['o', 1]:5.2f} | "
                    f"{res['g', 2]:8.3f} {res['o', 2]:8.3f} {res['g', 2] / res['o', 2]:5.2f} | "
                    f"{res['o', 1] / res['o', 2]:5.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
