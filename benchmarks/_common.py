"""What the benchmark scripts share: best-of timings, and ggml's quantizer (the test oracle) to time against.

The scripts run as ``python benchmarks/bench_x.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

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
