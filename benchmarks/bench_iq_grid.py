"""IQ1 / IQ2 / IQ3 quantization speed: ggquant vs ggml's ggml_quantize_chunk, at 1 and 2 threads.

Same method as bench_iq.py (whose timing helpers this reuses): ggml through the test oracle (ctypes,
GIL released; for 2 threads its rows are split over two Python threads), ggquant with its own
thread pool, best of --repeat, every ratio measured in this run, bytes checked equal once per row
of the table. Both sides are warmed up first, so neither side's one-time table building is timed.
All types use an imatrix (three of them require one).

    python benchmarks/bench_iq_grid.py            # 1024x4096 per type
    python benchmarks/bench_iq_grid.py --quick    # 256x4096
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

import numpy as np
from bench_iq import best_time, ggml_runner

import ggquant

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

TYPES = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256x4096 instead of 1024x4096")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--types", default=",".join(TYPES))
    ap.add_argument("--simd", default=None, help="force a SIMD level for ggquant (generic, avx2, avx512)")
    args = ap.parse_args()

    try:
        from oracle import ggml_oracle

        oracle = ggml_oracle.get_oracle()
    except ImportError as e:
        sys.exit(f"the ggml oracle is needed for this benchmark: {e}")
    if oracle is None:
        sys.exit(f"the ggml oracle is needed for this benchmark: {ggml_oracle.unavailable_reason()}")

    rows, cols = (256, 4096) if args.quick else (1024, 4096)
    cfg = ggquant.config()
    print(f"ggquant SIMD level: {args.simd or cfg.get('simd_active')}  (available {cfg.get('simd_available')})")
    head = f"{'ggml 1t':>8} {'ours 1t':>8} {'x':>5} | {'ggml 2t':>8} {'ours 2t':>8} {'x':>5}"
    print(f"{'type':8} {'shape':>11} | {head} | ours 2t/1t")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, cols), dtype=np.float32)
    w = (rng.standard_normal((64, cols)) ** 2).sum(axis=0).astype(np.float32)
    for t in args.types.split(","):
        tid = int(ggquant.resolve_type(t))
        oracle.quantize_chunk(tid, x[:1], w)  # ggml_quantize_init builds its tables here
        ref = np.asarray(oracle.quantize_chunk(tid, x, w)).view(np.uint8).reshape(rows, -1)
        if not np.array_equal(ref, ggquant.quantize(x, t, imatrix=w, simd=args.simd)):
            sys.exit(f"{t}: bytes differ from ggml")
        res = {}
        for nt in (1, 2):
            res["g", nt] = best_time(ggml_runner(oracle, t, x, w, nt), args.repeat)
            ours = functools.partial(ggquant.quantize, x, t, imatrix=w, nthreads=nt, simd=args.simd)
            res["o", nt] = best_time(ours, args.repeat)
        print(
            f"{t:8} {rows:>5}x{cols:<5} | "
            f"{res['g', 1]:8.3f} {res['o', 1]:8.3f} {res['g', 1] / res['o', 1]:5.2f} | "
            f"{res['g', 2]:8.3f} {res['o', 2]:8.3f} {res['g', 2] / res['o', 2]:5.2f} | "
            f"{res['o', 1] / res['o', 2]:5.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
