"""llama.cpp's presets against the budget planner at the same file size, measured on held-out text.

For each preset (default Q3_K_M, Q4_K_M, Q5_K_M), without and with an importance matrix computed on the
calibration text, this script

1. converts the model with the preset (``ggquant.convert``, the file llama-quantize would write);
2. profiles the model (weight error of every tensor at every candidate type, and each tensor's KLD
   sensitivity measured on the calibration text; cached, so a second run is fast);
3. plans a file of at most the preset's size (``ggquant.budget.plan_for_budget``) and writes it;
4. evaluates both files on the held-out text (``ggquant.quality.Evaluator``, torch backend) and prints
   mean KLD, ln PPL ratio and top-1 agreement, the KLD ratio planner/preset, and the correlation
   between predicted and measured KLD over all the plans.

Usage:
    python benchmarks/bench_planner.py MODEL_DIR -f CALIB.txt -e EVAL.txt [--calib-chunks 3] [--eval-chunks 8]

The calibration and evaluation texts must be disjoint (the KLD is measured on text the planner never saw).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ggquant
from ggquant import budget, precision
from ggquant.quality import Evaluator


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("-f", "--calib", required=True, help="calibration text (sensitivities, imatrix)")
    ap.add_argument("-e", "--eval", required=True, help="held-out evaluation text")
    ap.add_argument("--presets", default="Q3_K_M,Q4_K_M,Q5_K_M")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--calib-chunks", type=int, default=3)
    ap.add_argument("--eval-chunks", type=int, default=8)
    ap.add_argument("--imatrix-chunks", type=int, default=8)
    ap.add_argument("--kld", default="tensor", choices=["tensor", "layer"])
    ap.add_argument("--imatrix", choices=["both", "without", "with"], default="both")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--out-dir", default=None, help="keep the GGUF files here (default: a temporary directory)")
    args = ap.parse_args()

    t_start = time.perf_counter()
    calib = Path(args.calib).read_text(encoding="utf-8", errors="replace")
    out = Path(args.out_dir or tempfile.mkdtemp(prefix="bench-planner-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"# bench_planner: {args.model}, ctx {args.ctx}, calibration {args.calib} ({args.calib_chunks} chunks), "
          f"held-out {args.eval} ({args.eval_chunks} chunks), threads {ggquant.get_num_threads()}", flush=True)
    ev_cal = Evaluator(args.model, calib, ctx=args.ctx, n_chunks=args.calib_chunks, progress=False)
    ev = Evaluator(args.model, Path(args.eval), ctx=args.ctx, n_chunks=args.eval_chunks, progress=False)
    variants: list[tuple[str, object]] = []
    if args.imatrix in ("both", "without"):
        variants.append(("no imatrix", None))
    if args.imatrix in ("both", "with"):
        imx_path = out / "imatrix.gguf"
        ggquant.compute_imatrix(args.model, calib, ctx=args.ctx, n_chunks=args.imatrix_chunks, progress=False,
                                output=imx_path)
        variants.append(("imatrix", imx_path))

    rows = []
    for label, imx in variants:
        t0 = time.perf_counter()
        prof = precision.profile(args.model, calib=calib, imatrix=imx, kld=args.kld, ctx=args.ctx,
                                 n_chunks=args.calib_chunks, cache_dir=args.cache_dir, evaluator=ev_cal, quiet=True)
        print(f"# profile ({label}): {prof.measured} measured, {prof.cached} cached, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        for preset in args.presets.split(","):
            pf = out / f"{preset}-{label.replace(' ', '_')}.gguf"
            r = ggquant.convert(args.model, pf, preset, imatrix=imx, quiet=True)
            plan = budget.plan_for_budget(prof, target_size=r.file_size)
            qf = out / f"planned-{preset}-{label.replace(' ', '_')}.gguf"
            budget.write_plan(plan, args.model, qf, imatrix=imx, quiet=True)
            pred_preset = math.fsum(_predicted(prof, t.name, t.type) for t in r.plan.tensors)
            m_pre = ev.evaluate(pf)
            m_pl = ev.evaluate(qf)
            rows.append((preset, label, r.file_size, qf.stat().st_size, m_pre, m_pl, pred_preset, plan.predicted_error))
            print(_row(rows[-1]), flush=True)

    print()
    print("| preset | imatrix | preset bytes | planner bytes | size ratio | KLD preset | KLD planner | KLD ratio | "
          "ln PPL ratio preset | ln PPL ratio planner | top-1 preset | top-1 planner |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        preset, label, sb, qb, a, b, _, _ = row
        print(f"| {preset} | {label} | {sb:,} | {qb:,} | {qb / sb:.4f} | {a.kld_mean:.5f} ± {a.kld_mean_se:.5f} | "
              f"{b.kld_mean:.5f} ± {b.kld_mean_se:.5f} | {b.kld_mean / a.kld_mean:.3f} | "
              f"{a.ln_ppl_ratio:+.5f} | {b.ln_ppl_ratio:+.5f} | {100 * a.top1:.2f} % | {100 * b.top1:.2f} % |")
    pred = np.array([x for r in rows for x in (r[6], r[7])])
    meas = np.array([x for r in rows for x in (r[4].kld_mean, r[5].kld_mean)])
    if len(rows) >= 2:
        pearson = float(np.corrcoef(pred, meas)[0, 1])
        rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
        spearman = float(np.corrcoef(rank(pred), rank(meas))[0, 1])
        print(f"\npredicted vs measured KLD over {len(pred)} files: Pearson {pearson:.3f}, Spearman {spearman:.3f}; "
              f"mean measured/predicted {float(np.mean(meas / pred)):.3f}")
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


def _predicted(prof: precision.Profile, name: str, t: ggquant.GGMLType) -> float:
    tp = prof.tensor(name)
    return next((c.error for c in tp.candidates if c.type == t), 0.0)


def _row(r: tuple) -> str:
    preset, label, sb, qb, a, b, pa, pb = r
    return (f"{preset:<7} {label:<10} preset {sb:>11,} B KLD {a.kld_mean:.5f} (pred {pa:.5f}) | planner {qb:>11,} B "
            f"KLD {b.kld_mean:.5f} (pred {pb:.5f}) | ratio {b.kld_mean / a.kld_mean:.3f}")


if __name__ == "__main__":
    sys.exit(main())
