"""IQ1 / IQ2 / IQ3 quantization speed: ggquant vs ggml's ggml_quantize_chunk, at 1 and 2 threads
(method: quantize_vs_ggml_main in benchmarks/_common.py). All types use an imatrix (IQ2_XXS, IQ2_XS
and IQ1_S require one). The byte check before timing builds both sides' lattice tables, so neither
side's one-time table building is timed.

    python benchmarks/bench_iq_grid.py            # 1024x4096
    python benchmarks/bench_iq_grid.py --quick    # 256x4096
"""

from __future__ import annotations

from _common import quantize_vs_ggml_main

TYPES = ["iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"]

if __name__ == "__main__":
    quantize_vs_ggml_main(__doc__, TYPES, shapes=((1024, 4096),), quick_shapes=((256, 4096),), imatrix_modes=(True,))
