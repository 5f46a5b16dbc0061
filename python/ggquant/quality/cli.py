"""The ``ggquant imatrix``, ``ggquant validate`` and ``ggquant diff`` subcommands (registered by ggquant.cli)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..calib_cache import write_json
from ..errors import GGQuantError
from .audit import diff_gguf, validate
from .imatrix_torch import compute_imatrix


def _cmd_imatrix(args: argparse.Namespace) -> int:
    try:
        data = compute_imatrix(args.model, Path(args.file), ctx=args.ctx, n_chunks=args.chunks,
                               process_output=args.process_output, progress=not args.quiet, output=args.output,
                               dataset=args.file)
    except GGQuantError as e:
        print(f"ggquant imatrix: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"wrote {args.output}: {len(data)} entries", file=sys.stderr)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        rep = validate(args.baseline, args.quantized, Path(args.file), max_kld=args.max_kld,
                       max_ppl_ratio=args.max_ppl_ratio, ctx=args.ctx, n_chunks=args.chunks, backend=args.backend,
                       progress=not args.quiet, imatrix=args.imatrix)
        if args.json:
            write_json(args.json, rep.to_dict(), GGQuantError, "validation report")
        if args.plan_report:
            rep.annotate_plan_report(args.plan_report)
    except GGQuantError as e:
        print(f"ggquant validate: error: {e}", file=sys.stderr)
        return 2
    print(rep.format())
    return 0 if rep.passed else 1


def _cmd_diff(args: argparse.Namespace) -> int:
    try:
        rep = diff_gguf(args.a, args.b)
    except GGQuantError as e:
        print(f"ggquant diff: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rep.to_dict(), indent=1, default=str) if args.json else rep.format())
    return 0 if rep.identical else 1


def add_parsers(sub: Any) -> None:
    """Add ``imatrix``, ``validate`` and ``diff`` to the ``ggquant`` subcommand parsers."""
    im = sub.add_parser("imatrix", help="importance matrix from a Hugging Face model (llama-imatrix's GGUF format)")
    im.add_argument("model", help="Hugging Face model directory")
    im.add_argument("-f", "--file", required=True, help="calibration text file")
    im.add_argument("-o", "--output", required=True, help="output imatrix .gguf")
    im.add_argument("-c", "--ctx", type=int, default=512, help="tokens per chunk (default 512)")
    im.add_argument("--chunks", type=int, default=None, help="at most this many chunks")
    im.add_argument("--process-output", action="store_true", help="also collect output.weight")
    im.add_argument("--quiet", action="store_true", help="no progress")
    im.set_defaults(func=_cmd_imatrix)

    va = sub.add_parser("validate", help="KLD/PPL of a quantized model against its baseline; exit 1 over threshold",
                        description="Evaluate QUANTIZED against BASELINE on a text as llama-perplexity "
                                    "--kl-divergence does. Exit status 0: every threshold holds; 1: one is exceeded; "
                                    "2: usage or input error.")
    va.add_argument("--baseline", required=True, help="Hugging Face model directory (torch) or F32/F16/BF16 GGUF")
    va.add_argument("--quantized", required=True, help="GGUF file, MLX directory, or a preset name (e.g. Q4_K_M)")
    va.add_argument("-f", "--file", required=True, help="evaluation text file")
    va.add_argument("--max-kld", type=float, default=None, help="fail when the mean KLD exceeds this")
    va.add_argument("--max-ppl-ratio", type=float, default=None, help="fail when PPL(Q)/PPL(base) exceeds this")
    va.add_argument("--json", default=None, metavar="REPORT", help="write the audit report (JSON) here")
    va.add_argument("--plan-report", default=None, metavar="PLAN.json",
                    help="fill the measured errors of this plan report (ggquant convert --report) of QUANTIZED")
    va.add_argument("-c", "--ctx", type=int, default=512, help="tokens per chunk (default 512)")
    va.add_argument("--chunks", type=int, default=None, help="at most this many chunks")
    va.add_argument("--backend", choices=["torch", "llama.cpp"], default="torch")
    va.add_argument("--imatrix", default=None, help="imatrix for a preset quantized on the fly")
    va.add_argument("--quiet", action="store_true", help="no progress")
    va.set_defaults(func=_cmd_validate)

    df = sub.add_parser("diff", help="metadata and tensor differences between two GGUF files (split sets too)")
    df.add_argument("a")
    df.add_argument("b")
    df.add_argument("--json", action="store_true", help="print the report as JSON")
    df.set_defaults(func=_cmd_diff)


__all__ = ["add_parsers"]
