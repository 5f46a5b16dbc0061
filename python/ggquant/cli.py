"""The ``ggquant`` command line. Subcommands grow with the package; each is a small function that parses
nothing itself and calls the library (all argparse code is in this file)."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable
from typing import Protocol

from . import budget, precision
from .calib_cache import CalibCache
from .config import config, show_config
from .convert import MAX_SHARD_BYTES, ConversionResult, convert_many, convert_mlx
from .errors import GGQuantError, GGQuantWarning
from .inspect_file import inspect_file
from .mlx_recipes import MLX_LM_RECIPES, is_mlx_quant
from .quality import cli as _quality_cli
from .requantize import quantize_file


def _cmd_config(args: argparse.Namespace) -> int:
    show_config()
    return 0


def _size(text: str) -> int:
    mult = {"K": 1000, "M": 1000**2, "G": 1000**3}.get(text[-1:].upper(), 1)
    try:
        n = int(text[:-1] if mult > 1 else text) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: expected a number with optional K, M or G") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: must be positive")
    return n


def run_mlx_convert(args: argparse.Namespace) -> int:
    """``ggquant convert DIR --format mlx -q int4 -o OUT_DIR``: the MLX branch of ``convert``.

    Uses ``args.model``, ``outfile``, ``quant``, ``group_size``, ``q_bits``, ``q_group_size``,
    ``q_mode``, ``quant_predicate``, ``dtype``, ``split_max_size`` (the shard size), ``dry_run``,
    ``quiet``, ``allow_requantize`` and ``threads``; GGUF-only options are rejected (exit status 2).

    Returns:
        The exit status: 0, 1 (conversion error) or 2 (usage error).
    """
    for opt in ("imatrix", "tensor_type", "token_embedding_type", "output_tensor_type", "split_max_tensors"):
        if getattr(args, opt, None):
            print(f"ggquant convert: error: --{opt.replace('_', '-')} applies to --format gguf only", file=sys.stderr)
            return 2
    if getattr(args, "pure", False):
        print("ggquant convert: error: --pure applies to --format gguf only", file=sys.stderr)
        return 2
    q_bits, q_group = getattr(args, "q_bits", None), getattr(args, "q_group_size", None)
    quant, q_mode = getattr(args, "quant", None), getattr(args, "q_mode", None)
    if q_mode is not None:  # mlx_lm.convert --q-mode: one mode on every matrix
        if quant is not None:
            print("ggquant convert: error: give -q (Ollama's types) or --q-mode (mlx_lm's), not both", file=sys.stderr)
            return 2
        quant = "mlx:" + q_mode
    if quant is not None and not is_mlx_quant(quant):
        print(
            f"ggquant convert: error: {quant!r} is not an MLX mode; with --format mlx use -q "
            "int4, int8, mxfp4, nvfp4, mxfp8, affine or mlx:MODE",
            file=sys.stderr,
        )
        return 2
    try:
        r = convert_mlx(
            args.model,
            args.outfile,
            quant,
            bits=q_bits,
            group_size=q_group or getattr(args, "group_size", None),
            quant_predicate=getattr(args, "quant_predicate", None),
            dtype=getattr(args, "dtype", None) or "auto",
            max_shard_size=getattr(args, "split_max_size", None) or MAX_SHARD_BYTES,
            dry_run=args.dry_run,
            quiet=args.quiet,
            allow_requantize=getattr(args, "allow_requantize", False),
            nthreads=getattr(args, "threads", None),
        )
    except GGQuantError as e:
        print(f"ggquant convert: error: {e}", file=sys.stderr)
        return 1
    q = r.quantization
    _report_result(args, r, [], lambda: (
        f"wrote {r.path} ({len(r.shards)} shard(s), {r.total_size:,} bytes of tensors, {r.recipe}: {q['mode']} "
        f"{q['bits']} bits / group {q['group_size']} by default) in {r.seconds:.1f} s"))
    return 0


class _Formattable(Protocol):
    def format(self) -> str: ...


def _report_result(args: argparse.Namespace, r: _Formattable, warns: list[str], wrote: Callable[[], str]) -> None:
    """What a writing command prints: its warnings, then the plan (--dry-run) or the ``wrote ...`` line."""
    if not args.quiet:
        for w in warns:
            print(f"warning: {w}", file=sys.stderr)
    if args.dry_run:
        print(r.format())
    elif not args.quiet:
        print(wrote(), file=sys.stderr)


def _tensor_type_overrides(specs: list[str] | None) -> list[str]:
    """``--tensor-type REGEX=TYPE`` values with the pattern lower-cased, as llama-quantize does."""
    out = []
    for spec in specs or []:
        pat, sep, typ = spec.rpartition("=")
        out.append(f"{pat.lower()}{sep}{typ}" if sep else spec)
    return out


def _cmd_convert(args: argparse.Namespace) -> int:
    if _planned(args):
        return _cmd_convert_planned(args)
    if args.format == "mlx":
        return run_mlx_convert(args)
    if (args.group_size is not None or args.dtype is not None or args.q_bits or args.q_group_size or args.q_mode
            or args.quant_predicate):
        print("ggquant convert: error: --group-size, --q-bits, --q-group-size, --q-mode, --quant-predicate and "
              "--dtype apply to --format mlx only", file=sys.stderr)
        return 2
    overrides = _tensor_type_overrides(args.tensor_type)
    # -q A,B,C writes one file per preset from one read of the model (-o needs {preset})
    presets = (args.quant or "Q4_K_M").split(",")
    try:
        rs = convert_many(args.model, args.outfile, presets, imatrix=args.imatrix, tensor_types=overrides,
                          token_embedding_type=args.token_embedding_type, output_tensor_type=args.output_tensor_type,
                          pure=args.pure, dry_run=args.dry_run, quiet=args.quiet,
                          allow_requantize=args.allow_requantize, nthreads=args.threads,
                          split_max_tensors=args.split_max_tensors, split_max_size=args.split_max_size,
                          tokenizer_dir=args.tokenizer_dir, no_vocab=args.no_vocab)
    except GGQuantError as e:
        print(f"ggquant convert: error: {e}", file=sys.stderr)
        return 1
    for r in rs:
        _report_convert(args, r)
    return 0


def _report_convert(args: argparse.Namespace, r: ConversionResult) -> None:
    _report_result(args, r, r.plan.warnings, lambda: (
        f"wrote {r.path} ({r.file_size:,} bytes, preset {r.plan.preset}, {r.plan.bits_per_weight:.2f} bpw) "
        f"in {r.seconds:.1f} s"))


# ---- reach: inspect, quantize (GGUF -> GGUF); logic in inspect_file.py / requantize.py


def _cmd_inspect(args: argparse.Namespace) -> int:
    try:
        info = inspect_file(args.file)
    except GGQuantError as e:
        print(f"ggquant inspect: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info.to_dict(args.max_array), indent=1, ensure_ascii=False))
    else:
        print(info.format(args.max_array, tensors=not args.no_tensors))
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    overrides = _tensor_type_overrides(args.tensor_type)
    try:
        r = quantize_file(args.infile, args.outfile, args.preset, imatrix=args.imatrix, tensor_types=overrides,
                          output_tensor_type=args.output_tensor_type, token_embedding_type=args.token_embedding_type,
                          pure=args.pure, allow_requantize=args.allow_requantize, keep_split=args.keep_split,
                          dry_run=args.dry_run, nthreads=args.threads, quiet=args.quiet)
    except GGQuantError as e:
        print(f"ggquant quantize: error: {e}", file=sys.stderr)
        return 1
    _report_result(args, r, r.warnings, lambda: (
        f"wrote {', '.join(r.paths)} ({r.tensor_bytes:,} bytes of tensor data, preset {r.plan.preset}, "
        f"{r.plan.bits_per_weight:.2f} bpw) in {r.seconds:.1f} s"))
    return 0


def _add_reach_convert_args(cv: argparse.ArgumentParser) -> None:
    cv.add_argument("--tokenizer-dir", metavar="DIR", default=None,
                    help="where tokenizer.json / tokenizer.model are (default: the model directory)")
    cv.add_argument("--q-bits", type=int, default=None, metavar="N",
                    help="--format mlx: bits per weight, as mlx_lm.convert --q-bits (affine mode unless -q names one)")
    cv.add_argument("--q-group-size", type=int, default=None, metavar="N",
                    help="--format mlx: group size, as mlx_lm.convert --q-group-size")
    cv.add_argument("--q-mode", choices=["affine", "mxfp4", "nvfp4", "mxfp8"], default=None,
                    help="--format mlx: one mode on every matrix, as mlx_lm.convert --q-mode (instead of -q)")
    cv.add_argument("--quant-predicate", choices=sorted(MLX_LM_RECIPES), default=None,
                    help="--format mlx: mlx_lm.convert's mixed-bit recipe (affine; per-layer bits in config.json)")
    cv.add_argument("--no-vocab", action="store_true",
                    help="write the GGUF even without a tokenizer (llama.cpp cannot run it without a vocabulary)")


def _add_reach_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    qz = sub.add_parser("quantize", help="GGUF -> quantized GGUF, byte-identical to llama-quantize",
                        description="Requantize a GGUF file (F32/F16/BF16, or quantized with --allow-requantize) "
                                    "with llama.cpp's per-tensor preset rules; the output equals llama-quantize's "
                                    "with the same arguments byte for byte.")
    qz.add_argument("infile", help="input .gguf (any shard of a split set)")
    qz.add_argument("outfile", help="output .gguf (with --keep-split: the shards' prefix)")
    qz.add_argument("preset", help="preset (Q4_K_M, Q5_K_M, Q6_K, Q8_0, IQ4_XS, F16, ...) or one ggml type (q4_K)")
    _add_llama_quantize_args(qz)
    qz.add_argument("--allow-requantize", action="store_true", help="requantize tensors that are quantized already")
    qz.add_argument("--keep-split", action="store_true", help="one output shard per input shard")
    qz.add_argument("--dry-run", action="store_true", help="print the per-tensor plan; write nothing")
    qz.add_argument("--threads", type=int, default=None, metavar="N", help="quantization threads (default: all)")
    qz.add_argument("--quiet", action="store_true", help="no progress lines")
    qz.set_defaults(func=_cmd_quantize)

    ins = sub.add_parser("inspect", help="show metadata, tensor table and totals of a GGUF or safetensors model",
                         description="Describe a GGUF file (any shard of a split set opens the set), a .safetensors "
                                     "file, a sharded checkpoint directory or an MLX model directory: metadata (long "
                                     "arrays abbreviated), one line per tensor (name, type, shape, bytes, offset) "
                                     "and the totals (parameters, bits per weight). Reads headers only.")
    ins.add_argument("file", help=".gguf or .safetensors file, or a model directory")
    ins.add_argument("--json", action="store_true", help="print JSON for programs")
    ins.add_argument("--max-array", type=int, default=8, metavar="N",
                     help="show at most N items of a metadata array (default 8)")
    ins.add_argument("--no-tensors", action="store_true", help="omit the tensor table")
    ins.set_defaults(func=_cmd_inspect)


# ---- end reach


def _add_llama_quantize_args(p: argparse.ArgumentParser) -> None:
    """The per-tensor options ``convert`` and ``quantize`` share with llama-quantize."""
    p.add_argument("--imatrix", help="importance matrix file from llama-imatrix (GGUF or legacy .dat)")
    p.add_argument("--tensor-type", action="append", metavar="REGEX=TYPE",
                   help="override the type of tensors whose name matches REGEX (repeatable), e.g. attn_v=q8_0")
    p.add_argument("--token-embedding-type", metavar="TYPE", help="type of token_embd.weight")
    p.add_argument("--output-tensor-type", metavar="TYPE", help="type of output.weight")
    p.add_argument("--pure", action="store_true", help="no mixture rules: the preset's base type everywhere")


def build_parser() -> argparse.ArgumentParser:
    """The ``ggquant`` argument parser with every subcommand."""
    p = argparse.ArgumentParser(prog="ggquant", description="Fast, bit-exact GGUF and MLX quantization.")
    p.add_argument("--version", action="version", version=f"ggquant {config()['version']}")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("config", help="show version, OpenMP, threads and SIMD level")
    c.set_defaults(func=_cmd_config)

    cv = sub.add_parser("convert", help="Hugging Face model directory -> quantized GGUF (or MLX), in one step",
                        description="Convert a Hugging Face checkpoint (config.json + safetensors or pytorch_model.bin) "
                                    "to a GGUF file with llama.cpp's per-tensor quantization preset, or with "
                                    "--format mlx to an MLX model directory that mlx_lm.load opens.")
    cv.add_argument("model", help="model directory (config.json, model*.safetensors or pytorch_model*.bin, tokenizer)")
    cv.add_argument("-o", "--outfile", help="output .gguf file, or the output directory for --format mlx "
                                            "(required unless --dry-run)")
    cv.add_argument("-q", "--quant", default=None,
                    help="preset (Q2_K, Q3_K_S/M/L, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S/M, Q5_K_S/M, Q6_K, Q8_0, IQ4_NL, "
                         "IQ4_XS, F16, BF16, F32) or one ggml type for all tensors (e.g. q4_K); default Q4_K_M. "
                         "Several, comma-separated (Q4_K_M,Q8_0), write one file each in one pass: -o out-{preset}.gguf. "
                         "With --format mlx: int4 (default), int8, mxfp4, nvfp4, mxfp8 as ollama create --quantize "
                         "writes them (int4: 4 bits/group 64, k/v/down_proj and lm_head 8 bits), or affine / mlx:MODE "
                         "for one type on every matrix as mlx_lm.convert")
    cv.add_argument("--format", choices=["gguf", "mlx"], default="gguf",
                    help="gguf (default): one GGUF file; mlx: an mlx_lm model directory (safetensors shards with "
                         ".weight/.scales/.biases and config.json's quantization section)")
    cv.add_argument("--group-size", type=int, default=None, help="--format mlx: override the mode's group size")
    cv.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default=None,
                    help="--format mlx: convert the weights to this dtype first (default: config.json's torch_dtype, "
                         "as mlx_lm.convert)")
    _add_llama_quantize_args(cv)
    cv.add_argument("--dry-run", action="store_true", help="print the per-tensor plan and the predicted size; write nothing")
    cv.add_argument("--quiet", action="store_true", help="no progress bar")
    cv.add_argument("--allow-requantize", action="store_true",
                    help="convert a checkpoint that declares a quantization_config anyway")
    cv.add_argument("--threads", type=int, default=None, help="quantization threads (default: all)")
    cv.add_argument("--split-max-tensors", type=int, default=None, metavar="N",
                    help="write shards of at most N tensors (OUT-00001-of-0000K.gguf)")
    cv.add_argument("--split-max-size", type=_size, default=None, metavar="N[K|M|G]",
                    help="write shards of at most this much tensor data (decimal units, as llama-gguf-split)")
    cv.set_defaults(func=_cmd_convert)

    _quality_cli.add_parsers(sub)  # imatrix, validate, diff (helper eval; the logic lives in ggquant.quality)
    _add_planner_commands(sub, cv)
    _add_reach_convert_args(cv)
    _add_reach_parsers(sub)
    return p


# ---- planner (precision profile, calibration cache, plans to a budget) ----------------------


def _planned(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) is not None for k in ("target_bpw", "target_size", "max_kld", "max_tensor_error"))


def _types_arg(text: str | None) -> list[str] | None:
    return None if text is None else [x.strip() for x in text.split(",") if x.strip()]


def _cmd_convert_planned(args: argparse.Namespace) -> int:

    if args.quant is not None or args.pure or args.format != "gguf":
        print("ggquant convert: error: --target-bpw/--target-size/--max-kld/--max-tensor-error choose the types "
              "themselves: drop -q/--quant, --pure and --format mlx", file=sys.stderr)
        return 2
    overrides = _tensor_type_overrides(args.tensor_type)
    kld = args.kld or ("tensor" if args.max_kld is not None and args.profile is None else False)
    try:
        plan = budget.plan_for_budget(
            args.model, target_bpw=args.target_bpw, target_size=args.target_size, max_kld=args.max_kld,
            max_tensor_error=args.max_tensor_error, profile_data=args.profile, imatrix=args.imatrix, calib=args.calib,
            kld=kld, types=_types_arg(args.types), tensor_types=overrides,
            token_embedding_type=args.token_embedding_type, output_tensor_type=args.output_tensor_type,
            cache_dir=args.cache_dir, quiet=args.quiet)
        if args.report:
            plan.save_report(args.report)
        if args.dry_run:
            print(plan.format())
            return 0
        r = budget.write_plan(plan, args.model, args.outfile, imatrix=args.imatrix, quiet=args.quiet,
                              nthreads=args.threads)
    except GGQuantError as e:
        print(f"ggquant convert: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"wrote {r.path} ({r.file_size:,} bytes, {plan.bits_per_weight:.3f} bpw, predicted "
              f"{plan.predicted_error:.4g} {plan.error_unit}) in {r.seconds:.1f} s", file=sys.stderr)
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:

    try:
        prof = precision.profile(args.model, calib=args.calib, imatrix=args.imatrix, types=_types_arg(args.types),
                                 kld=args.kld or False, probe_type=args.probe_type, max_rows=args.max_rows or None,
                                 ctx=args.ctx, n_chunks=args.chunks, cache=not args.no_cache,
                                 cache_dir=args.cache_dir, quiet=args.quiet)
        if args.json:
            prof.save(args.json)
        if args.plot:
            prof.plot(args.plot)
    except GGQuantError as e:
        print(f"ggquant profile: error: {e}", file=sys.stderr)
        return 1
    print(prof.table())
    return 0


def _cmd_cache(args: argparse.Namespace) -> int:

    try:
        with CalibCache(args.cache_dir) as c:
            if args.action == "list":
                rows = c.summary()
                print(f"{c.path}: {sum(r['records'] for r in rows)} records")
                for r in rows:
                    print(f"  model {r['model_sha'][:16]}  {r['metric']:<12} calib {r['calib_sha'][:8] or '-':<8} "
                          f"imatrix {r['imatrix_sha'][:8] or '-':<8} v{r['version']:<8} {r['tensors']:>5} tensors "
                          f"{r['records']:>6} records")
            elif args.action == "export":
                print(f"exported {c.export(args.file, args.model_sha)} records to {args.file}")
            elif args.action == "import":
                print(f"imported {c.import_file(args.file)} records into {c.path}")
            else:
                print(f"deleted {c.clear(args.model_sha)} records from {c.path}")
    except GGQuantError as e:
        print(f"ggquant cache: error: {e}", file=sys.stderr)
        return 1
    return 0


def _add_planner_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], cv: argparse.ArgumentParser) -> None:
    g = cv.add_argument_group("planning to a budget (instead of -q PRESET)")
    g.add_argument("--target-bpw", type=float, metavar="BPW", help="choose per-tensor types for this many bits per weight")
    g.add_argument("--target-size", metavar="SIZE", help="... for this file size (e.g. 3.5G, 900MiB)")
    g.add_argument("--max-kld", type=float, metavar="KLD", help="... for the smallest file with a predicted KLD below this "
                   "(measures sensitivities on -f CALIB)")
    g.add_argument("--max-tensor-error", type=float, metavar="T",
                   help="per tensor the smallest type whose measured error is below T")
    g.add_argument("--profile", metavar="JSON", help="use this profile (from ggquant profile --json) instead of profiling")
    g.add_argument("-f", "--calib", metavar="FILE", help="calibration text for --kld / --max-kld")
    g.add_argument("--kld", nargs="?", const="tensor", choices=["tensor", "layer"], default=None,
                   help="measure each tensor's (or layer's) KLD sensitivity on the calibration text")
    g.add_argument("--types", metavar="LIST", help="candidate types, e.g. q3_K,q4_K,q5_K,q6_K,q8_0 (default: all)")
    g.add_argument("--report", metavar="JSON", help="write the plan's JSON report (types, bytes, predicted errors)")
    g.add_argument("--cache-dir", help="calibration cache directory (default $GGQUANT_CACHE_DIR or ~/.cache/ggquant)")

    pr = sub.add_parser("profile", help="measure each tensor's error at each candidate type (and its KLD sensitivity)",
                        description="For every quantizable tensor and candidate type: bytes and relative weight error "
                                    "(imatrix-weighted with --imatrix); with --kld also the KLD of the model when only "
                                    "that tensor is quantized. Results are cached (see ggquant cache).")
    pr.add_argument("model", help="Hugging Face model directory")
    pr.add_argument("-f", "--calib", metavar="FILE", help="calibration text (needed for --kld)")
    pr.add_argument("--imatrix", help="importance matrix file (weights the error, used by the quantizers)")
    pr.add_argument("--types", metavar="LIST", help="candidate types, comma-separated (default: all llama.cpp loads)")
    pr.add_argument("--kld", nargs="?", const="tensor", choices=["tensor", "layer"], default=None,
                    help="measure KLD sensitivity per tensor (default) or per layer (faster)")
    pr.add_argument("--probe-type", default="q3_K", help="type the sensitivity is measured at (default q3_K)")
    pr.add_argument("--ctx", type=int, default=512, help="context length of the KLD evaluation (default 512)")
    pr.add_argument("--chunks", type=int, default=None, help="evaluate at most this many chunks of calibration text")
    pr.add_argument("--max-rows", type=int, default=1024, help="rows sampled per tensor for the weight error (0: all)")
    pr.add_argument("--json", metavar="FILE", help="write the profile as JSON")
    pr.add_argument("--plot", metavar="FILE.svg", help="write a heat map (layers x tensor roles) as SVG")
    pr.add_argument("--cache-dir", help="calibration cache directory")
    pr.add_argument("--no-cache", action="store_true", help="neither read nor write the calibration cache")
    pr.add_argument("--quiet", action="store_true", help="no progress on stderr")
    pr.set_defaults(func=_cmd_profile)

    ca = sub.add_parser("cache", help="list, export, import or clear the calibration cache")
    ca.add_argument("action", choices=["list", "export", "import", "clear"])
    ca.add_argument("file", nargs="?", help="the JSON file for export/import")
    ca.add_argument("--model-sha", help="export/clear only the records of this model (SHA-256)")
    ca.add_argument("--cache-dir", help="calibration cache directory")
    ca.set_defaults(func=_cmd_cache)


def main(argv: list[str] | None = None) -> int:
    """Run ``ggquant`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "convert" and not args.dry_run and not args.outfile:
        parser.error("convert: -o/--outfile is required unless --dry-run")
    if args.command == "cache" and args.action in ("export", "import") and not args.file:
        parser.error(f"cache {args.action}: FILE is required")
    with warnings.catch_warnings():  # the subcommands print the library's warnings on stderr themselves
        warnings.simplefilter("ignore", GGQuantWarning)
        status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
