"""GGUF F16 -> PRESET: ggquant.quantize_file vs llama.cpp's llama_model_quantize (llama-quantize), in one run.

Converts a Hugging Face model directory to an F16 GGUF with ggquant (default: the shared pycoder-23m
model, or pass --model DIR), then for each preset and thread count (default 1 and all) times, best of
--repeat, interleaved: ggquant, llama.cpp, and the kernels alone (the tensors that change type, read into
memory first, untimed, quantized with the plan's types into a reused buffer); checks that the two output
files are byte-identical (sha256); prints the ratios, GB/s of F16 input, ggquant's peak RSS (a child
process, all threads) and the I/O floor (read of the mapped input + filling an equally large preallocated mapped output).

Run: python benchmarks/bench_requantize.py [--model DIR] [--presets Q4_K_M,Q8_0] [--threads 1,N] [--repeat 3]
Needs: llama-cpp-python (libllama; see tests/oracle/build_oracle.sh).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from _common import best_times  # noqa: E402
from bench_convert import floor_seconds  # noqa: E402


def _sha(p: Path) -> bytes:
    return hashlib.sha256(p.read_bytes()).digest()


def _peak_rss(f16: Path, out: Path, preset: str, n: int) -> float:
    """Peak RSS (MiB) of a child process running quantize_file."""
    code = (f"import ggquant, resource; ggquant.quantize_file({str(f16)!r}, {str(out)!r}, {preset!r}, nthreads={n}); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out.unlink()
    return int(p.stdout.split()[-1]) / 1024.0


def main() -> int:
    import ggquant
    import llama_oracle
    from ggquant.batch import QuantJob, quantize_batch
    from ggquant.plan import LLAMA_FTYPE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="/work/shared/models/pycoder-23m")
    ap.add_argument("--presets", default="Q4_K_M,Q8_0")
    ap.add_argument("--threads", default=f"1,{os.cpu_count() or 1}")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if llama_oracle.available():
        print(f"skipped: {llama_oracle.available()}")
        return 0
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        f16 = Path(tmp) / "f16.gguf"
        ggquant.convert(args.model, f16, "F16", quiet=True)
        size = f16.stat().st_size
        print(f"input: {args.model} -> F16 GGUF, {size / 2**20:.1f} MiB; best of {args.repeat}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print("kernels = quantizing the tensors that change type from memory; floor = read the mapped input + "
              "fill the output's preallocated mmap (one thread); RSS = peak of a child process (all threads)")
        print("| preset | threads | kernels s | ggquant s | ggquant / kernels | ggquant / floor | GB/s in | llama.cpp s "
              "| llama.cpp / ggquant | RSS MiB | identical |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for preset in args.presets.split(","):
            ours, theirs = Path(tmp) / "ours.gguf", Path(tmp) / "theirs.gguf"
            plan = ggquant.quantize_file(f16, None, preset, dry_run=True).plan
            with ggquant.gguf.GGUFReader(f16) as rd:
                src = {t.name: np.array(t.data) for t in rd.tensors}
            work = [(src[p.name], p) for p in plan.tensors if ggquant.type_info(p.type).is_quantized]
            buf = np.ones(max(p.nbytes for p in plan.tensors), np.uint8)
            ggquant.quantize_file(f16, ours, preset)
            floor = floor_seconds(str(f16), ours.stat().st_size, tmp)
            rss = _peak_rss(f16, ours, preset, threads[-1])
            for n in threads:
                def kernels(n: int = n) -> None:
                    for a, p in work:
                        quantize_batch([QuantJob(a, p.type, buf)], nthreads=n)

                t = best_times({
                    "kernels": kernels,
                    "ours": lambda n=n: ggquant.quantize_file(f16, ours, preset, nthreads=n),
                    "ref": lambda n=n: llama_oracle.quantize_file(str(f16), str(theirs), LLAMA_FTYPE[preset], nthread=n),
                }, args.repeat)
                print(f"| {preset} | {n} | {t['kernels']:.3f} | {t['ours']:.3f} | {t['ours'] / t['kernels']:.2f}x "
                      f"| {t['ours'] / floor:.2f}x | {size / t['ours'] / 1e9:.2f} | {t['ref']:.3f} "
                      f"| {t['ref'] / t['ours']:.2f}x | {rss:.0f} | {_sha(ours) == _sha(theirs)} |")
            os.unlink(ours)
            os.unlink(theirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
