"""IQ4_XS / IQ4_NL quantization speed: ggquant vs ggml's ggml_quantize_chunk, at 1 and 2 threads.

ggml is called through the test oracle (tests/oracle/ggml_oracle.py, ctypes, which releases the
GIL); for 2 threads its rows are split into two halves run on two Python threads. ggquant uses its
own thread pool. Every ratio printed is measured in this run (best of --repeat); the bytes are
checked equal once per row of the table.

    python benchmarks/bench_iq.py            # 4096x4096 and 14336x4096
    python benchmarks/bench_iq.py --quick    # 1024x4096 only
"""

from __future__ import annotations

from _common import quantize_vs_ggml_main

TYPES = ["iq4_xs", "iq4_nl"]

if __name__ == "__main__":
    quantize_vs_ggml_main(__doc__, TYPES)
