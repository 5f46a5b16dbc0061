"""Two trees of ggquant on the same conversions, in one run: did a change make conversion slower?

Generates bench_convert.py's Llama-shaped bf16 checkpoint (2048 wide, ``--layers`` layers), then converts it
with each tree (a directory holding the ``ggquant`` package with its built ``_core``, put on PYTHONPATH),
alternating trees, each conversion in its own process: GGUF Q4_K_M, GGUF Q8_0 and MLX int4. Prints the best
wall time of ``--reps`` runs and the peak RSS (``ru_maxrss``) per tree, and the ratio after/before.

Run: python benchmarks/bench_convert_trees.py BEFORE_DIR AFTER_DIR [--layers 4] [--reps 2] [--workdir DIR]
e.g. BEFORE_DIR from ``git archive main python | tar -x -C /tmp/base`` plus a copied ``_core*.so``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
JOBS = {
    "GGUF Q4_K_M": "ggquant.convert(M, O + '.gguf', 'Q4_K_M', quiet=True)",
    "GGUF Q8_0": "ggquant.convert(M, O + '.gguf', 'Q8_0', quiet=True)",
    "MLX int4": "ggquant.convert_mlx(M, O, 'int4', quiet=True)",
}


def run(tree: str, call: str, model: Path, out: Path) -> tuple[float, float]:
    code = (f"import time, resource, ggquant; M, O = {str(model)!r}, {str(out)!r}; t0 = time.perf_counter(); {call}; "
            f"print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       env=dict(os.environ, PYTHONPATH=tree))
    if p.returncode:
        raise RuntimeError(f"{tree}: {call} failed:\n{p.stderr[-3000:]}")
    t, rss = map(float, p.stdout.split())
    return t, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_trees_"))
    model = work / "model"
    if not (model / "model.safetensors.index.json").exists():
        code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_convert as b; "
                f"b.make_model(__import__('pathlib').Path({str(model)!r}), {args.layers})")
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    res: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rep in range(args.reps):
        for job, call in JOBS.items():
            for label, tree in (("before", args.before), ("after", args.after)):
                out = work / f"out-{label}-{rep}-{job.replace(' ', '_')}"
                res.setdefault((job, label), []).append(run(tree, call, model, out))
                shutil.rmtree(out, ignore_errors=True)
                Path(str(out) + ".gguf").unlink(missing_ok=True)
    print("| conversion | before | after | after / before | peak RSS before / after |")
    print("|---|---|---|---|---|")
    for job in JOBS:
        b, a = res[(job, "before")], res[(job, "after")]
        tb, ta = min(x[0] for x in b), min(x[0] for x in a)
        print(f"| {job} | {tb:.2f} s | {ta:.2f} s | {ta / tb:.2f} | "
              f"{max(x[1] for x in b):.0f} / {max(x[1] for x in a):.0f} MiB |")


if __name__ == "__main__":
    main()
