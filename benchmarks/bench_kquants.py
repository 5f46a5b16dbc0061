"""K-quant (Q2_K..Q6_K) quantization speed: ggquant vs ggml's ggml_quantize_chunk, at 1 and 2 threads
(method: quantize_vs_ggml_main in benchmarks/_common.py).

    python benchmarks/bench_kquants.py            # 4096x4096 and 14336x4096
    python benchmarks/bench_kquants.py --quick    # 1024x4096 only
"""

from __future__ import annotations

from _common import quantize_vs_ggml_main

TYPES = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]

if __name__ == "__main__":
    quantize_vs_ggml_main(__doc__, TYPES)
