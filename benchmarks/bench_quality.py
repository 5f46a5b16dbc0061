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

import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import ggquant
from ggquant.plan import PRESETS
from ggquant.quality import Evaluator

from _common import scoring_parser


def _llama_perplexity(binary: Path, model: Path, text: Path, ctx: int, chunks: int, base: Path, kld: bool,
                      threads: int) -> dict[str, float]:
    cmd = [str(binary), "-m", str(model), "-c", str(ctx), "--chunks", str(chunks), "-t", str(threads),
           "-b", str(ctx)]
    cmd += ["--kl-divergence-base", str(base)] + (["--kl-divergence"] if kld else ["-f", str(text)])
    # llama.cpp's asynchronous logger drops the last lines (the summary) when stdout is a pipe: give it a pty
    with tempfile.NamedTemporaryFile(suffix=".log") as f:
        subprocess.run(["script", "-qec", shlex.join(cmd), f.name], capture_output=True, check=True,
                       stdin=subprocess.DEVNULL)  # script passes its stdin on; a closed one ends the run early
        log = Path(f.name).read_text(errors="replace")
    vals: dict[str, float] = {}
    for key, rx in (("ppl", r"Mean PPL\(Q\)\s*:\s*([\d.]+)"), ("ppl_base", r"Mean PPL\(base\)\s*:\s*([\d.]+)"),
                    ("kld", r"Mean\s+KLD:\s*(-?[\d.]+)"), ("top1", r"Same top p:\s*([\d.]+)"),
                    ("final_ppl", r"Final estimate: PPL = ([\d.]+)")):
        m = re.search(rx, log)
        if m:
            vals[key] = float(m.group(1))
    return vals


def _ggml_op(name: str, header: Path) -> int:
    """The value of ``GGML_OP_<name>`` in ggml.h's ``enum ggml_op``."""
    body = header.read_text().split("enum ggml_op {", 1)[1].split("};", 1)[0]
    ops = [ln.strip().rstrip(",") for ln in body.splitlines() if ln.strip().startswith("GGML_OP_")]
    return ops.index(f"GGML_OP_{name}")


def llama_cpp_imatrix(model: Path, tokens: np.ndarray, ctx: int, bos: int | None, threads: int,
                      header: Path) -> dict[str, np.ndarray]:
    """llama-imatrix's collection (quality.md §2.1) run inside llama.cpp itself through llama-cpp-python: the
    scheduler's eval callback sees every MUL_MAT whose weight is a ``blk.*`` tensor and sums the squares of its
    F32 input rows; returns name -> mean of x^2 per column (what llama-quantize uses)."""
    import ctypes

    import llama_cpp

    class Tensor(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                    ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16),
                    ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                    ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
                    ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8)]

    mul_mat = _ggml_op("MUL_MAT", header)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def wanted(t: Tensor) -> bool:
        if t.op != mul_mat or not t.src[0] or not t.src[1]:
            return False
        w, x = Tensor.from_address(t.src[0]), Tensor.from_address(t.src[1])
        return w.name.decode().startswith("blk.") and x.type == 0 and x.ne[1] >= 16

    def cb(ptr: int, ask: bool, _ud: int) -> bool:
        t = Tensor.from_address(ptr)
        if ask:
            return wanted(t)
        if wanted(t):
            name = Tensor.from_address(t.src[0]).name.decode()
            x = Tensor.from_address(t.src[1])
            ne, nb = list(x.ne), list(x.nb)
            size = max((ne[i] - 1) * nb[i] for i in range(4)) + 4
            buf = np.frombuffer((ctypes.c_char * size).from_address(x.data), np.uint8)
            a = np.lib.stride_tricks.as_strided(buf.view(np.float32), shape=(ne[3], ne[2], ne[1], ne[0]),
                                                strides=(nb[3], nb[2], nb[1], nb[0])).reshape(-1, ne[0])
            sums[name] = sums.get(name, 0) + (a.astype(np.float64) ** 2).sum(0)
            counts[name] = counts.get(name, 0) + a.shape[0]
        return True

    callback = llama_cpp.ggml_backend_sched_eval_callback(cb)
    llama_cpp.llama_backend_init()
    m = llama_cpp.llama_model_load_from_file(str(model).encode(), llama_cpp.llama_model_default_params())
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = cp.n_batch = cp.n_ubatch = ctx
    cp.n_threads = cp.n_threads_batch = threads
    cp.cb_eval, cp.cb_eval_user_data = callback, None
    c = llama_cpp.llama_init_from_model(m, cp)
    batch = llama_cpp.llama_batch_init(ctx, 0, 1)
    try:
        for i in range(len(tokens) // ctx):
            ids = [int(t) for t in tokens[i * ctx:(i + 1) * ctx]]
            if bos is not None:
                ids[0] = bos
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(c), True)
            for j, tok in enumerate(ids):  # outputs at every position, as llama-imatrix requests
                batch.token[j], batch.pos[j], batch.n_seq_id[j], batch.logits[j] = tok, j, 1, True
                batch.seq_id[j][0] = 0
            batch.n_tokens = ctx
            if llama_cpp.llama_decode(c, batch) != 0:
                raise RuntimeError("llama_decode failed")
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(c)
        llama_cpp.llama_model_free(m)
    return {k: (v / counts[k]).astype(np.float32) for k, v in sums.items()}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def main() -> int:
    ap = scoring_parser(__doc__)
    ap.add_argument("--presets", default="all", help="comma-separated, 'all' (every quantized preset) or 'none'")
    ap.add_argument("--compare", default="", help="presets to score with all three tools")
    ap.add_argument("--llama-bin", default=os.environ.get("LLAMA_BIN", ""), help="dir with llama-perplexity")
    ap.add_argument("--imatrix", default=None, metavar="CALIB", help="compare imatrices on this calibration text")
    ap.add_argument("--plot", default=None, help="PNG of KLD against bits per weight")
    ap.add_argument("--ggml-header", default=str(Path.home() / ".cache/ggquant-oracle/llama_cpp_python-0.3.36/vendor/"
                                                 "llama.cpp/ggml/include/ggml.h"), help="ggml.h (for GGML_OP_MUL_MAT)")
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
        f32 = work / "F32.gguf"
        if not f32.is_file():
            ggquant.convert(args.model, f32, "F32", quiet=True)
        ref: dict[str, dict[str, np.ndarray]] = {}
        if args.llama_bin and (Path(args.llama_bin) / "llama-imatrix").is_file():
            theirs = work / "imatrix-llama.gguf"
            subprocess.run([str(Path(args.llama_bin) / "llama-imatrix"), "-m", str(f32), "-f", str(calib), "-c",
                            str(args.ctx), "--chunks", str(args.chunks), "-t", str(args.threads), "-o", str(theirs),
                            "--no-ppl", "-b", str(args.ctx)], capture_output=True, check=True)
            ref["llama-imatrix"] = ggquant.read_imatrix(theirs).weights
        el = Evaluator(f32, np.arange(2 * args.ctx) % 256, ctx=args.ctx, backend="llama.cpp", progress=False)
        toks = el._model.tokenize(calib.read_text()[:-1] if calib.read_text().endswith("\n") else calib.read_text())
        header = Path(args.ggml_header)
        ref["llama.cpp eval callback"] = llama_cpp_imatrix(f32, toks[: args.chunks * args.ctx], args.ctx,
                                                           el._model.bos_id if el._model.add_bos else None,
                                                           args.threads, header)
        a = ggquant.read_imatrix(ours).weights
        for what, b in ref.items():
            common = sorted(set(a) & set(b))
            rs = {n: _pearson(a[n], b[n]) for n in common}
            worst = min(rs, key=rs.__getitem__)
            rel = {n: float(np.abs(a[n] - b[n]).max() / np.abs(b[n]).max()) for n in common}
            print(f"\n# imatrix on {calib.name} vs {what}: {len(common)} common entries (ggquant {len(a)}, "
                  f"{what} {len(b)}); Pearson r min {rs[worst]:.6f} ({worst}), median "
                  f"{float(np.median(list(rs.values()))):.6f}; max relative difference {max(rel.values()):.2e}")
    print(f"# total {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
