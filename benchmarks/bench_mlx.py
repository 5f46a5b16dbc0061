"""MLX modes: ggquant vs mlx.core.quantize on the CPU, each mode on a 4096x14336 matrix, in one run.

Times are the best of --repeat runs (MLX's arrays are evaluated with mx.eval); the bytes are checked
equal first. Run: python benchmarks/bench_mlx.py [--quick] [--dtype bfloat16|float16|float32]
"""

from __future__ import annotations

import argparse
import os

import ggquant
import ggquant.mlx as gm
import numpy as np
from _common import best_time


def main() -> None:
    import mlx.core as mx

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a 512x14336 matrix, one repeat")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--modes", default="int4,int8,mxfp4,nvfp4,mxfp8")
    args = ap.parse_args()
    shape = (512, 14336) if args.quick else (4096, 14336)
    repeat = 1 if args.quick else args.repeat
    nthreads = os.cpu_count() or 1
    ggquant.show_config()
    print(f"mlx {mx.__version__} on {mx.default_device()}; input {shape[0]}x{shape[1]} {args.dtype}\n")
    x32 = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if args.dtype == "bfloat16":
        import ml_dtypes

        x = x32.astype(ml_dtypes.bfloat16)
        xm = mx.array(x.view(np.uint16)).view(mx.bfloat16)
    else:
        x = x32.astype(args.dtype)
        xm = mx.array(x)
    del x32
    mx.eval(xm)
    print(f"{'mode':6} {'mlx s':>8} {'1 thr s':>8} {f'{nthreads} thr s':>8} {'mlx/1t':>7} {'mlx/Nt':>7}")
    for name in args.modes.split(","):
        mode, bits, gs = gm.resolve(name)

        def run_mlx(mode=mode, bits=bits, gs=gs):
            out = mx.quantize(xm, group_size=gs, bits=bits, mode=mode)
            mx.eval(*out)
            return out

        ref = run_mlx()
        ours = gm.quantize(x, name)
        for a, b in zip(ours.arrays, ref):
            b = np.array(b.view(mx.uint16)) if b.dtype == mx.bfloat16 else np.array(b)
            assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), f"{name}: bytes differ from MLX"
        del ref, ours
        t_mlx = best_time(run_mlx, repeat)
        t_1 = best_time(lambda name=name: gm.quantize(x, name, nthreads=1), repeat)
        t_n = best_time(lambda name=name: gm.quantize(x, name, nthreads=nthreads), repeat)
        print(f"{name:6} {t_mlx:8.3f} {t_1:8.3f} {t_n:8.3f} {t_mlx / t_1:6.2f}x {t_mlx / t_n:6.2f}x")


if __name__ == "__main__":
    main()
