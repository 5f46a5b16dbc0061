"""What the benchmark scripts share: best-of timings, ggml's quantizer (the test oracle) to time against, and
the command line of the scripts that score a model on a text.

The scripts run as ``python benchmarks/bench_x.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

import ggquant

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # tests/oracle/ggml_oracle.py


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls of ``fn``."""
    return best_times({"fn": fn}, repeat)["fn"]


def best_times(fns: dict, repeat: int) -> dict:
    """Best wall time of each function; rounds interleave them so that a burst of load from other
    processes hits all of them alike."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def scoring_parser(doc: str | None) -> argparse.ArgumentParser:
    """The arguments of the scripts that score quantized models on a text (bench_quality.py,
    bench_mlx_recipes.py): the model, the text, the context and the number of chunks, so that their rows compare."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    return ap


def ggml_oracle_or_exit():
    """ggml's own quantizers (tests/oracle/ggml_oracle.py), or exit saying why they are missing."""
    try:
        from oracle import ggml_oracle
    except ImportError as e:
        sys.exit(f"the ggml oracle is needed for this benchmark: {e}")
    oracle = ggml_oracle.get_oracle()
    if oracle is None:
        sys.exit(f"the ggml oracle is needed for this benchmark: {ggml_oracle.unavailable_reason()}")
    return oracle


def ggml_runner(oracle, t: str, x: np.ndarray, w: np.ndarray | None, nthreads: int) -> Callable[[], None]:
    """ggml_quantize_chunk over x; for nthreads > 1 its row ranges run on that many Python threads
    (ctypes releases the GIL)."""
    tid = int(ggquant.resolve_type(t))
    parts = np.array_split(np.arange(x.shape[0]), nthreads)
    chunks = [np.ascontiguousarray(x[p[0] : p[-1] + 1]) for p in parts]  # row ranges: copied once, if at all

    def run() -> None:
        if nthreads == 1:
            oracle.quantize_chunk(tid, chunks[0], w)
            return
        ths = [threading.Thread(target=oracle.quantize_chunk, args=(tid, c, w)) for c in chunks]
        for th in ths:
            th.start()
        for th in ths:
            th.join()

    return run


def quantize_vs_ggml_main(
    doc: str,
    types: list[str],
    shapes: tuple[tuple[int, int], ...] = ((4096, 4096), (14336, 4096)),
    quick_shapes: tuple[tuple[int, int], ...] = ((1024, 4096),),
    imatrix_modes: tuple[bool, ...] = (False, True),
) -> None:
    """The command line of bench_kquants.py / bench_iq.py / bench_iq_grid.py: ggquant vs
    ggml_quantize_chunk at 1 and 2 threads, without and/or with an imatrix (imatrix_modes). ggml
    runs through the test oracle (ctypes, which releases the GIL); for 2 threads its rows are split
    into two halves run on two Python threads, while ggquant uses its own thread pool. Every ratio
    printed is measured in this run (best of --repeat, rounds interleaved); the bytes are checked
    equal once per row of the table, which also builds both sides' lazily made tables before timing."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    def fmt(sh: tuple[tuple[int, int], ...]) -> str:
        return " and ".join(f"{r}x{c}" for r, c in sh)

    ap.add_argument("--quick", action="store_true", help=f"{fmt(quick_shapes)} instead of {fmt(shapes)}")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--types", default=",".join(types))
    ap.add_argument("--simd", default=None, help="force a SIMD level for ggquant (generic, avx2, avx512)")
    args = ap.parse_args()
    oracle = ggml_oracle_or_exit()

    if args.quick:
        shapes = quick_shapes
    cfg = ggquant.config()
    print(f"ggquant SIMD level: {args.simd or cfg.get('simd_active')}  (available {cfg.get('simd_available')})")
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}")
    head = f"{'ggml 1t':>8} {'ours 1t':>8} {'x':>5} | {'ggml 2t':>8} {'ours 2t':>8} {'x':>5}"
    tw = max(6, *(len(t) for t in args.types.split(",")))
    print(f"{'type':{tw}} {'shape':>11} {'imatrix':7} | {head} | ours 2t/1t")
    rng = np.random.default_rng(0)
    for rows, cols in shapes:
        x = rng.standard_normal((rows, cols), dtype=np.float32)
        w = (rng.standard_normal((64, cols)) ** 2).sum(axis=0).astype(np.float32)
        for t in args.types.split(","):
            for im in (w if m else None for m in imatrix_modes):
                ref = np.asarray(oracle.quantize_chunk(int(ggquant.resolve_type(t)), x, im)).view(np.uint8)
                if not np.array_equal(ref.reshape(rows, -1), ggquant.quantize(x, t, imatrix=im, simd=args.simd)):
                    sys.exit(f"{t}: bytes differ from ggml")
                fns = {}
                for nt in (1, 2):
                    fns["g", nt] = ggml_runner(oracle, t, x, im, nt)
                    fns["o", nt] = functools.partial(ggquant.quantize, x, t, imatrix=im, nthreads=nt, simd=args.simd)
                res = best_times(fns, args.repeat)
                print(
                    f"{t:{tw}} {rows:>5}x{cols:<5} {'yes' if im is not None else 'no':7} | "
                    f"{res['g', 1]:8.3f} {res['o', 1]:8.3f} {res['g', 1] / res['o', 1]:5.2f} | "
                    f"{res['g', 2]:8.3f} {res['o', 2]:8.3f} {res['g', 2] / res['o', 2]:5.2f} | "
                    f"{res['o', 1] / res['o', 2]:5.2f}",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
