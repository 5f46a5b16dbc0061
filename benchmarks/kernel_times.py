"""One-thread times of a few kernels at each SIMD level, as JSON: to compare two builds on a busy machine.

Run it alternately with each build first on the path and keep the best time per kernel, e.g.

    for r in 1 2 3; do PYTHONPATH=A/python python benchmarks/kernel_times.py > a_$r.json
                       PYTHONPATH=B/python python benchmarks/kernel_times.py > b_$r.json; done
"""

from __future__ import annotations

import json

import numpy as np
from _common import best_time

import ggquant
import ggquant.mlx as gm

GGML = [("q8_0", False), ("q4_0", False), ("q4_1", True), ("q4_K", False), ("q4_K", True), ("q6_K", False),
        ("iq4_xs", False), ("iq4_nl", True)]  # fmt: skip
MLX = ["int4", "mlx:nvfp4", "mxfp8"]


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 4096), dtype=np.float32)
    w = (rng.standard_normal((64, 4096)) ** 2).sum(axis=0).astype(np.float32)
    out = {}
    before = ggquant.get_simd_level()
    for lv in ggquant.config()["simd_available"][1:]:
        for t, weighted in GGML:
            im = w if weighted else None
            out[f"{t}{'+imatrix' if weighted else ''} {lv}"] = best_time(
                lambda t=t, im=im: ggquant.quantize(x, t, imatrix=im, simd=lv, nthreads=1), 5
            )
        ggquant.set_simd_level(lv)
        for m in MLX:
            out[f"{m} {lv}"] = best_time(lambda m=m: gm.quantize(x, m, nthreads=1), 5)
        ggquant.set_simd_level(before)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
