"""Q8_0 and Q4_0 quantize throughput: ggquant (1 thread, all threads) vs gguf-py, in one run.

GB/s counts float32 input bytes. Run: python benchmarks/bench_legacy_quants.py [--quick]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from gguf import GGMLQuantizationType as GT
from gguf import quants as gq

import ggquant
from _common import best_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small matrices, one repeat")
    args = ap.parse_args()
    shapes = [(512, 4096)] if args.quick else [(4096, 4096), (4096, 14336)]
    repeat = 1 if args.quick else 3
    nthreads = os.cpu_count() or 1
    ggquant.show_config()
    print()
    print(f"{'type':6} {'shape':>12} {'gguf-py':>9} {'1 thread':>9} {f'{nthreads} thr':>9} {'1t/py':>7} {'Nt/1t':>6}  (GB/s f32 in)")
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.standard_normal(shape, dtype=np.float32)
        gb = x.nbytes / 1e9
        for t in ["q8_0", "q4_0"]:
            ref = gq.quantize(x, GT[t.upper()])
            ours = ggquant.quantize(x, t)
            assert np.array_equal(ref.view(np.uint8).reshape(ours.shape), ours), "bytes differ from gguf-py"
            t_py = best_time(lambda: gq.quantize(x, GT[t.upper()]), 1)
            t_1 = best_time(lambda: ggquant.quantize(x, t, nthreads=1), repeat)
            t_n = best_time(lambda: ggquant.quantize(x, t, nthreads=nthreads), repeat)
            print(
                f"{t:6} {shape[0]:>5}x{shape[1]:<6} {gb / t_py:9.3f} {gb / t_1:9.2f} {gb / t_n:9.2f} "
                f"{t_py / t_1:6.1f}x {t_1 / t_n:5.2f}x"
            )


if __name__ == "__main__":
    main()
