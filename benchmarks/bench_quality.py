"""What each preset costs on a real model: size, bits per weight, KLD, ln PPL ratio, top-1 agreement, and
(``--compare``) whether ggquant's two backends and ``llama-perplexity --kl-divergence`` agree.

1. ``ggquant.Evaluator(MODEL_DIR, TEXT)`` (torch backend) computes the baseline log-probabilities once; every
   preset is then applied as fake quantization (bit-identical to the GGUF file ggquant/llama.cpp writes) and
   scored; the file size is the converter's exact prediction (``convert(..., dry_run=True)``).
2. ``--compare P1,P2``: those presets are converted to GGUF files and scored by the torch backend (file mapped
   back), by the llama.cpp backend (llama-cpp-python; baseline the F32 GGUF) and by ``llama-perplexity``
   (``--kl-divergence-base`` from the F32 GGUF, then ``--kl-divergence`` per file), all on the same text/ctx.
3. ``--imatrix``: also ggquant's imatrix of the model vs ``llama-imatrix``'s, Pearson r per tensor.

Run: python benchmarks/bench_quality.py MODEL_DIR -f TEXT [-c 512] [--chunks 8] [--presets all]
         [--compare Q4_K_M,Q2_K] [--llama-bin DIR] [--imatrix CALIB] [--plot kld.png] [--workdir DIR]
Needs: torch, transformers (ggquant[eval]); llama-cpp-python and a llama.cpp build with llama-perplexity /
llama-imatrix (``--llama-bin``) for --compare / --imatrix; matplotlib for --plot.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ggquant
from ggquant.plan import PRESETS
from ggquant.quality import Evaluator


def _llama_perplexity(binary: Path, model: Path, text: Path, ctx: int, chunks: int, base: Path, kld: bool,
                      threads: int) -> dict[str, float]:
    cmd = [str(binary), "-m", str(model), "-c", str(ctx), "--chunks", str(chunks), "-t", str(threads),
           "-b", str(ctx)]
    cmd += ["--kl-divergence-base", str(base)] + (["--kl-divergence"] if kld else ["-f", str(text)])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    log = out.stdout + out.stderr
    vals: dict[str, float] = {}
    for key, rx in (("ppl", r"Mean PPL\(Q\)\s*:\s*([\d.]+)"), ("ppl_base", r"Mean PPL\(base\)\s*:\s*([\d.]+)"),
                    ("kld", r"Mean\s+KLD:\s*(-?[\d.]+)"), ("top1", r"Same top p:\s*([\d.]+)"),
                    ("final_ppl", r"Final estimate: PPL = ([\d.]+)")):
        m = re.search(rx, log)
        if m:
            vals[key] = float(m.group(1))
    return vals


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("-c", "--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--presets", default="all", help="comma-separated, 'all' (every quantized preset) or 'none'")
    ap.add_argument("--compare", default="", help="presets to score with all three tools")
    ap.add_argument("--llama-bin", default=os.environ.get("LLAMA_BIN", ""), help="dir with llama-perplexity")
    ap.add_argument("--imatrix", default=None, metavar="CALIB", help="compare imatrices on this calibration text")
    ap.add_argument("--plot", default=None, help="PNG of KLD against bits per weight")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    text = Path(args.file)
    presets = [p for p in PRESETS if p not in ("F16", "BF16", "F32")] if args.presets == "all" else \
        [p for p in args.presets.split(",") if p and p != "none"]
    t0 = time.perf_counter()
    ev = Evaluator(args.model, text, ctx=args.ctx, n_chunks=args.chunks)
    print(f"# {args.model}: {ev.n_chunks} chunks x ctx {ev.ctx} = {ev.n_tokens} scored tokens of {text.name}; "
          f"baseline in {time.perf_counter() - t0:.0f} s; uint16 storage floor KLD {ev.kld_floor:.2e}", flush=True)
    rows = []
    for p in presets:
        dry = ggquant.convert(args.model, None, p, dry_run=True, quiet=True)
        if dry.plan.warnings and any("cannot quantize" in w for w in dry.plan.warnings):
            print(f"# {p}: skipped ({dry.plan.warnings[0]})")
            continue
        t = time.perf_counter()
        r = ev.evaluate(p)
        rows.append((p, dry.file_size, dry.plan.bits_per_weight, r))
        print(f"# {p}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    print("\n| preset | size MiB | bpw | mean KLD | ln PPL(Q)/PPL(base) | same top p | RMS Δp |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for p, size, bpw, r in rows:
        print(f"| {p} | {size / 2**20:.2f} | {bpw:.2f} | {r.kld_mean:.5f} ± {r.kld_mean_se:.5f} | "
              f"{r.ln_ppl_ratio:+.5f} ± {r.ln_ppl_ratio_se:.5f} | {100 * r.top1:.2f}% | {100 * r.rms_dp:.2f}% |")
    if rows:
        print(f"\nPPL(base) = {rows[0][3].ppl_base:.4f} ± {rows[0][3].ppl_base_se:.4f}")

    if args.plot and rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        xs, ys = [r[2] for r in rows], [r[3].kld_mean for r in rows]
        ax.scatter(xs, ys)
        for (p, _, x, r) in rows:
            ax.annotate(p, (x, r.kld_mean), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xlabel("bits per weight")
        ax.set_ylabel("mean KLD (nats/token)")
        ax.set_title(f"{Path(args.model).name}: KLD vs size ({ev.n_tokens} tokens)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"# wrote {args.plot}")

    binary = Path(args.llama_bin) / "llama-perplexity" if args.llama_bin else None
    compare = [p for p in args.compare.split(",") if p]
    if compare:
        f32 = ggquant.convert(args.model, work / "F32.gguf", "F32", quiet=True).path
        el = Evaluator(f32, text, ctx=args.ctx, n_chunks=args.chunks, backend="llama.cpp", n_threads=args.threads)
        same_tokens = np.array_equal(el.tokens, ev.tokens)
        base_kld = work / "base.kld"
        lp_base = _llama_perplexity(binary, f32, text, args.ctx, args.chunks, base_kld, False, args.threads) \
            if binary and binary.is_file() else None
        print(f"\n# comparison on the same {ev.n_tokens} tokens (tokenizations equal: {same_tokens}); "
              f"baseline PPL torch {ev.evaluate(f32).ppl_base:.4f}, llama.cpp backend {el.evaluate(f32).ppl_base:.4f}"
              + (f", llama-perplexity {lp_base.get('final_ppl', float('nan')):.4f}" if lp_base else ""))
        print("\n| preset | KLD torch | KLD llama.cpp backend | KLD llama-perplexity | KLD ratio llama.cpp/torch | "
              "KLD ratio llama-perplexity/torch | PPL torch | PPL llama.cpp | PPL llama-perplexity |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for p in compare:
            path = ggquant.convert(args.model, work / f"{p}.gguf", p, quiet=True).path
            a, b = ev.evaluate(path), el.evaluate(path)
            lp = _llama_perplexity(binary, path, text, args.ctx, args.chunks, base_kld, True, args.threads) \
                if lp_base is not None else {}
            k3, p3 = lp.get("kld", math.nan), lp.get("ppl", math.nan)
            print(f"| {p} | {a.kld_mean:.5f} | {b.kld_mean:.5f} | {k3:.5f} | {b.kld_mean / a.kld_mean:.3f} | "
                  f"{k3 / a.kld_mean:.3f} | {a.ppl:.4f} | {b.ppl:.4f} | {p3:.4f} |", flush=True)

    if args.imatrix:
        calib = Path(args.imatrix)
        ours = work / "imatrix-ggquant.gguf"
        ggquant.compute_imatrix(args.model, calib, ctx=args.ctx, n_chunks=args.chunks, output=ours)
        theirs = work / "imatrix-llama.gguf"
        f32 = work / "F32.gguf"
        if not f32.is_file():
            ggquant.convert(args.model, f32, "F32", quiet=True)
        subprocess.run([str(Path(args.llama_bin) / "llama-imatrix"), "-m", str(f32), "-f", str(calib), "-c",
                        str(args.ctx), "--chunks", str(args.chunks), "-t", str(args.threads), "-o", str(theirs),
                        "--no-ppl", "-b", str(args.ctx)], capture_output=True, check=True)
        a, b = ggquant.read_imatrix(ours).weights, ggquant.read_imatrix(theirs).weights
        common = sorted(set(a) & set(b))
        rs = {n: _pearson(a[n], b[n]) for n in common}
        worst = min(rs, key=rs.__getitem__)
        rel = {n: float(np.abs(a[n] - b[n]).max() / np.abs(b[n]).max()) for n in common}
        print(f"\n# imatrix on {calib.name}: {len(common)} common entries (ggquant {len(a)}, llama-imatrix {len(b)}); "
              f"Pearson r min {rs[worst]:.6f} ({worst}), median {float(np.median(list(rs.values()))):.6f}; "
              f"max relative difference {max(rel.values()):.2e}")
    print(f"# total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
