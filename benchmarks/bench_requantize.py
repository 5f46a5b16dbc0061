"""GGUF F16 -> PRESET: ggquant.quantize_file vs llama.cpp's llama_model_quantize (llama-quantize), in one run.

Converts a Hugging Face model directory to an F16 GGUF with ggquant (default: the shared pycoder-23m
model, or pass --model DIR), then for each preset times both quantizers on the same input with the same
thread count, checks that the two output files are byte-identical (sha256), and prints the time ratio.

Run: python benchmarks/bench_requantize.py [--model DIR] [--presets Q4_K_M,Q8_0] [--threads 2] [--repeat 3]
Needs: llama-cpp-python (libllama; see tests/oracle/build_oracle.sh).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from bench_legacy_quants import best_time  # noqa: E402


def main() -> int:
    import ggquant
    import llama_oracle
    from ggquant.plan import LLAMA_FTYPE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/work/shared/models/pycoder-23m")
    ap.add_argument("--presets", default="Q4_K_M,Q5_K_M,Q6_K,Q8_0,IQ4_XS")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if llama_oracle.available():
        print(f"skipped: {llama_oracle.available()}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        f16 = Path(tmp) / "f16.gguf"
        ggquant.convert(args.model, f16, "F16", quiet=True)
        print(f"input: {args.model} -> F16 GGUF, {f16.stat().st_size / 2**20:.1f} MiB; threads {args.threads}, "
              f"best of {args.repeat}")
        print(f"{'preset':<8} {'ggquant s':>10} {'llama.cpp s':>12} {'ratio':>7}  identical")
        for preset in args.presets.split(","):
            ours, theirs = Path(tmp) / "ours.gguf", Path(tmp) / "theirs.gguf"
            t_ours = best_time(lambda: ggquant.quantize_file(f16, ours, preset, nthreads=args.threads), args.repeat)
            t_ref = best_time(lambda: llama_oracle.quantize_file(str(f16), str(theirs), LLAMA_FTYPE[preset],
                                                             nthread=args.threads), args.repeat)
            same = hashlib.sha256(ours.read_bytes()).digest() == hashlib.sha256(theirs.read_bytes()).digest()
            print(f"{preset:<8} {t_ours:>10.3f} {t_ref:>12.3f} {t_ref / t_ours:>6.2f}x  {same}")
            os.unlink(ours)
            os.unlink(theirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
