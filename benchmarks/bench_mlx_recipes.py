"""What each MLX per-tensor rule costs on a real model: size, bits per weight, KLD, ln PPL ratio, top-1.

Each rule is written by ``ggquant.convert_mlx`` (Ollama's ``int4``/``int8``, mlx_lm's uniform ``affine`` and
``mlx:int4``, mlx_lm's ``--quant-predicate`` recipes) and the directory is scored against the float model by
``ggquant.Evaluator`` (torch backend, the directory's tensors dequantized in place), as bench_quality.py
scores the GGUF presets: same text, context and chunks give comparable rows. bpw = bytes of tensor data
x 8 / the model's parameters.

Run: python benchmarks/bench_mlx_recipes.py MODEL_DIR -f TEXT [-c 512] [--chunks 8]
Needs: torch, transformers (ggquant[eval]).
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ggquant
from ggquant.quality import Evaluator

from _common import scoring_parser

# label -> convert_mlx keyword arguments
RULES: dict[str, dict[str, Any]] = {
    "int4 (Ollama)": {"quant": "int4"},
    "affine 4/64 (mlx_lm -q)": {"quant": "affine"},
    "mlx:int4 (4/32 uniform)": {"quant": "mlx:int4"},
    "mixed_3_4": {"quant_predicate": "mixed_3_4"},
    "mixed_3_6": {"quant_predicate": "mixed_3_6"},
    "mixed_4_6": {"quant_predicate": "mixed_4_6"},
    "int8 (Ollama)": {"quant": "int8"},
}


def main() -> int:
    ap = scoring_parser(__doc__)
    args = ap.parse_args()

    ev = Evaluator(args.model, Path(args.file), ctx=args.ctx, n_chunks=args.chunks)
    n_params = sum(math.prod(s) for _, s in ev.tensors())
    print(f"# {args.model}: {ev.n_chunks} chunks x ctx {ev.ctx} = {ev.n_tokens} scored tokens of "
          f"{Path(args.file).name}")
    print("\n| rule | size MiB | bpw | mean KLD | ln PPL(Q)/PPL(base) | same top p |")
    print("|---|---:|---:|---:|---:|---:|")
    work = Path(tempfile.mkdtemp(prefix="bench_mlx_recipes_"))
    try:
        for label, kw in RULES.items():
            out = work / str(len(list(work.iterdir())))
            t = time.perf_counter()
            c = ggquant.convert_mlx(args.model, out, quiet=True, **kw)
            r = ev.evaluate(out, label=label)
            print(f"| {label} | {c.total_size / 2**20:.2f} | {8 * c.total_size / n_params:.2f} | "
                  f"{r.kld_mean:.5f} ± {r.kld_mean_se:.5f} | {r.ln_ppl_ratio:+.5f} ± {r.ln_ppl_ratio_se:.5f} | "
                  f"{100 * r.top1:.2f}% |", flush=True)
            print(f"# {label}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
