"""The ``ggquant`` command line. Subcommands grow with the package; each is a small function that parses
nothing itself and calls the library (all argparse code is in this file)."""

from __future__ import annotations

import argparse
import sys
import warnings

from .config import config, show_config
from .convert import MAX_SHARD_BYTES, convert, convert_mlx
from .errors import GGQuantError, GGQuantWarning
from .mlx import is_mlx_type


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

    Uses ``args.model``, ``outfile``, ``quant``, ``group_size``, ``dtype``, ``split_max_size``
    (the shard size), ``dry_run``, ``quiet``, ``allow_requantize`` and ``threads``; GGUF-only
    options are rejected (exit status 2).

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
    # mlx_lm.convert's --q-bits/--q-group-size mean its affine mode (default 4 bits, groups of 64)
    quant = getattr(args, "quant", None) or ("affine" if q_bits or q_group else "int4")
    if not is_mlx_type(quant):
        print(
            f"ggquant convert: error: {quant!r} is not an MLX mode; with --format mlx use -q "
            "int4, int8, mxfp4, nvfp4, mxfp8 or affine",
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
    if args.dry_run:
        print(r.format())
    elif not args.quiet:
        q = r.quantization
        print(
            f"wrote {r.path} ({len(r.shards)} shard(s), {r.total_size:,} bytes of tensors, {q['mode']} "
            f"{q['bits']} bits / group {q['group_size']}) in {r.seconds:.1f} s",
            file=sys.stderr,
        )
    return 0


def _tensor_type_overrides(specs: list[str] | None) -> list[str]:
    """``--tensor-type REGEX=TYPE`` values with the pattern lower-cased, as llama-quantize does."""
    out = []
    for spec in specs or []:
        pat, sep, typ = spec.rpartition("=")
        out.append(f"{pat.lower()}{sep}{typ}" if sep else spec)
    return out


def _cmd_convert(args: argparse.Namespace) -> int:
    if args.format == "mlx":
        return run_mlx_convert(args)
    if args.group_size is not None or args.dtype is not None or args.q_bits or args.q_group_size:
        print("ggquant convert: error: --group-size, --q-bits, --q-group-size and --dtype apply to --format mlx "
              "only", file=sys.stderr)
        return 2
    overrides = _tensor_type_overrides(args.tensor_type)
    try:
        r = convert(args.model, args.outfile, args.quant or "Q4_K_M", imatrix=args.imatrix, tensor_types=overrides,
                    token_embedding_type=args.token_embedding_type, output_tensor_type=args.output_tensor_type,
                    pure=args.pure, dry_run=args.dry_run, quiet=args.quiet, allow_requantize=args.allow_requantize,
                    nthreads=args.threads, split_max_tensors=args.split_max_tensors,
                    split_max_size=args.split_max_size, tokenizer_dir=args.tokenizer_dir, no_vocab=args.no_vocab)
    except GGQuantError as e:
        print(f"ggquant convert: error: {e}", file=sys.stderr)
        return 1
    for w in r.plan.warnings:
        if not args.quiet:
            print(f"warning: {w}", file=sys.stderr)
    if args.dry_run:
        print(r.format())
    elif not args.quiet:
        print(f"wrote {r.path} ({r.file_size:,} bytes, preset {r.plan.preset}, {r.plan.bits_per_weight:.2f} bpw) "
              f"in {r.seconds:.1f} s", file=sys.stderr)
    return 0


# ---- reach: inspect, quantize (GGUF -> GGUF); logic in inspect_file.py / requantize.py


def _cmd_inspect(args: argparse.Namespace) -> int:
    import json

    from .errors import GGQuantError
    from .inspect_file import inspect_file

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
    from .errors import GGQuantError
    from .requantize import quantize_file

    overrides = _tensor_type_overrides(args.tensor_type)
    try:
        r = quantize_file(args.infile, args.outfile, args.preset, imatrix=args.imatrix, tensor_types=overrides,
                          output_tensor_type=args.output_tensor_type, token_embedding_type=args.token_embedding_type,
                          pure=args.pure, allow_requantize=args.allow_requantize, keep_split=args.keep_split,
                          dry_run=args.dry_run, nthreads=args.threads, quiet=args.quiet)
    except GGQuantError as e:
        print(f"ggquant quantize: error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        for w in r.warnings:
            print(f"warning: {w}", file=sys.stderr)
    if args.dry_run:
        print(r.format())
    elif not args.quiet:
        print(f"wrote {', '.join(r.paths)} ({r.tensor_bytes:,} bytes of tensor data, preset {r.plan.preset}, "
              f"{r.plan.bits_per_weight:.2f} bpw) in {r.seconds:.1f} s", file=sys.stderr)
    return 0


def _add_reach_convert_args(cv: argparse.ArgumentParser) -> None:
    cv.add_argument("--tokenizer-dir", metavar="DIR", default=None,
                    help="where tokenizer.json / tokenizer.model are (default: the model directory)")
    cv.add_argument("--q-bits", type=int, default=None, metavar="N",
                    help="--format mlx: bits per weight, as mlx_lm.convert --q-bits (affine mode unless -q names one)")
    cv.add_argument("--q-group-size", type=int, default=None, metavar="N",
                    help="--format mlx: group size, as mlx_lm.convert --q-group-size")
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
    qz.add_argument("--imatrix", help="importance matrix from llama-imatrix (GGUF or legacy .dat)")
    qz.add_argument("--tensor-type", action="append", metavar="REGEX=TYPE",
                    help="override the type of tensors whose name matches REGEX (repeatable)")
    qz.add_argument("--output-tensor-type", metavar="TYPE", help="type of output.weight")
    qz.add_argument("--token-embedding-type", metavar="TYPE", help="type of token_embd.weight")
    qz.add_argument("--pure", action="store_true", help="no mixture rules: the preset's base type everywhere")
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
                         "With --format mlx: int4, int8, mxfp4, nvfp4, mxfp8 or affine; default int4")
    cv.add_argument("--format", choices=["gguf", "mlx"], default="gguf",
                    help="gguf (default): one GGUF file; mlx: an mlx_lm model directory (safetensors shards with "
                         ".weight/.scales/.biases and config.json's quantization section)")
    cv.add_argument("--group-size", type=int, default=None, help="--format mlx: override the mode's group size")
    cv.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default=None,
                    help="--format mlx: convert the weights to this dtype first (default: config.json's torch_dtype, "
                         "as mlx_lm.convert)")
    cv.add_argument("--imatrix", help="importance matrix file from llama-imatrix (GGUF or legacy .dat)")
    cv.add_argument("--tensor-type", action="append", metavar="REGEX=TYPE",
                    help="override the type of tensors whose name matches REGEX (repeatable), e.g. attn_v=q8_0")
    cv.add_argument("--token-embedding-type", metavar="TYPE", help="type of token_embd.weight")
    cv.add_argument("--output-tensor-type", metavar="TYPE", help="type of output.weight")
    cv.add_argument("--pure", action="store_true", help="no mixture rules: the preset's base type everywhere")
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
    _add_reach_convert_args(cv)
    _add_reach_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``ggquant`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "convert" and not args.dry_run and not args.outfile:
        parser.error("convert: -o/--outfile is required unless --dry-run")
    with warnings.catch_warnings():  # the subcommands print the library's warnings on stderr themselves
        warnings.simplefilter("ignore", GGQuantWarning)
        status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
