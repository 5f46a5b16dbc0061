"""Hugging Face checkpoint -> MLX-quantized model directory that ``mlx_lm.load`` opens.

The output is what ``mlx_lm.convert --quantize`` writes: safetensors shards
(``model.safetensors`` or ``model-0000i-of-0000n.safetensors``, ``{"format": "mlx"}`` metadata)
with ``NAME.weight`` (uint32 codes), ``NAME.scales`` and, for affine, ``NAME.biases`` per quantized
layer, ``model.safetensors.index.json``, a ``config.json`` with the ``quantization`` (and
``quantization_config``) section ``{"group_size", "bits", "mode"}``, and the tokenizer files copied.
Tensor names stay the checkpoint's: ``mlx_lm`` renames them with the model's ``sanitize`` when it
loads, as it does for the original checkpoint.

Quantized are the 2-D ``*.weight`` matrices whose rows are a multiple of the group size (the
Linear and Embedding layers ``mlx_lm`` quantizes; norms are 1-D); everything else is copied in its
dtype, and ``mlx_lm`` recognises per layer from the presence of ``.scales`` which layers are
quantized. A checkpoint with tied embeddings loses its (redundant) ``lm_head.weight``, as in
``mlx_lm.convert``. Tensors are read memory-mapped and written one at a time; the output directory
appears only when complete.

Example:
    >>> import ggquant
    >>> r = ggquant.convert_mlx("path/to/Llama-3.2-1B", "llama-int4-mlx", "int4")  # doctest: +SKIP
    >>> print(r.format())                                                           # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import mlx as _mlx
from .convert import _Progress
from .errors import FormatError, GGQuantError, GGQuantIOError

#: Shard size limit, as mlx_lm (5 GiB).
MAX_SHARD_BYTES = 5 << 30

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_FLOAT_DTYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16"}
_ST_ITEMSIZE = {
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "I32": 4,
    "U32": 4,
    "I16": 2,
    "U16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


@dataclass
class MLXTensorPlan:
    """One source tensor: what it becomes."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # safetensors dtype after the dtype conversion (the source's unless converted)
    quantized: bool
    outputs: list[tuple[str, str, tuple[int, ...]]]  # (name, safetensors dtype, shape)

    @property
    def nbytes(self) -> int:
        return sum(math.prod(s) * _ST_ITEMSIZE.get(d, 1) for _, d, s in self.outputs)


@dataclass
class MLXConversionResult:
    """What :func:`convert_mlx` did (or, with ``dry_run``, would do).

    Attributes:
        tensors: the per-tensor plan.
        quantization: the ``quantization`` section written to config.json.
        shards: shard file name -> tensor names in it.
        total_size: bytes of tensor data (the index's ``total_size``).
        path: the output directory (None for a dry run).
        seconds: wall time.
    """

    tensors: list[MLXTensorPlan]
    quantization: dict[str, Any]
    shards: dict[str, list[str]]
    total_size: int
    path: Path | None
    seconds: float = 0.0
    source_bytes: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def format(self) -> str:
        """The plan as a table with the output size."""
        q = self.quantization
        lines = [f"{'tensor':60} {'shape':>18} {'from':>5} -> {'to':<14} {'bytes':>14}"]
        for t in self.tensors:
            to = f"{q['mode']} {q['bits']}b/{q['group_size']}" if t.quantized else t.dtype
            lines.append(f"{t.name[:60]:60} {'x'.join(map(str, t.shape)):>18} {t.dtype:>5} -> {to:<14} {t.nbytes:>14,}")
        nq = sum(t.quantized for t in self.tensors)
        lines.append(
            f"{nq} of {len(self.tensors)} tensors quantized; {len(self.shards)} shard(s); "
            f"{self.total_size:,} bytes of tensors (source {self.source_bytes:,})"
        )
        return "\n".join(lines)


def _should_quantize(name: str, shape: tuple[int, ...], dtype: str, group_size: int) -> bool:
    return (
        name.endswith(".weight")
        and len(shape) == 2
        and dtype in _FLOAT_DTYPES
        and shape[-1] % group_size == 0
        and "norm" not in name.rsplit(".", 2)[-2]
    )


def _plan(ckpt: Any, mode: str, bits: int, gs: int, skip: set[str], cast: str | None) -> list[MLXTensorPlan]:
    out = []
    for name in sorted(ckpt.keys()):
        if name in skip:
            continue
        shape, dtype = tuple(ckpt.shape(name)), ckpt.dtype(name)
        if cast is not None and dtype in _FLOAT_DTYPES:
            dtype = cast  # the dtype the tensor is converted to (and quantized from)
        if _should_quantize(name, shape, dtype, gs):
            base = name[: -len("weight")]
            sdt = dtype if mode == "affine" else "U8"
            outs = [
                (name, "U32", (*shape[:-1], shape[-1] * bits // 32)),
                (base + "scales", sdt, (*shape[:-1], shape[-1] // gs)),
            ]
            if mode == "affine":
                outs.append((base + "biases", sdt, (*shape[:-1], shape[-1] // gs)))
            out.append(MLXTensorPlan(name, shape, dtype, True, outs))
        else:
            out.append(MLXTensorPlan(name, shape, dtype, False, [(name, dtype, shape)]))
    return out


def _shards(plan: list[MLXTensorPlan], max_bytes: int) -> list[list[MLXTensorPlan]]:
    """mlx_lm's make_shards, per source tensor (a layer's weight, scales and biases stay together)."""
    shards: list[list[MLXTensorPlan]] = []
    size = 0
    for t in plan:
        if not shards or size + t.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards


_DTYPE_NAMES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}


def _to_dtype(arr: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Convert a float tensor between F32/F16/BF16 with nearest-even rounding (MLX's astype).
    BF16 travels as raw uint16 bits unless ml_dtypes is installed."""
    if src == dst:
        return arr
    a = np.asarray(arr)
    if src == "BF16":
        f32 = (np.ascontiguousarray(a).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    else:
        f32 = a.astype(np.float32)
    if dst == "F32":
        return f32
    if dst == "F16":
        with np.errstate(over="ignore"):
            return f32.astype(np.float16)
    u = f32.view(np.uint32)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    bits[np.isnan(f32)] = 0x7FC0
    return bits


def _copy_side_files(src: Path, dst: Path) -> None:
    for p in sorted(src.iterdir()):
        if not p.is_file() or p.name == "config.json" or p.name in _WEIGHT_INDEXES:
            continue
        if p.name.endswith(_WEIGHT_SUFFIXES):
            continue
        shutil.copy2(p, dst / p.name)


def convert_mlx(
    model: str | os.PathLike[str],
    outdir: str | os.PathLike[str] | None,
    quant: str = "int4",
    *,
    bits: int | None = None,
    group_size: int | None = None,
    dtype: str | None = "auto",
    max_shard_size: int = MAX_SHARD_BYTES,
    dry_run: bool = False,
    quiet: bool = False,
    allow_requantize: bool = False,
    nthreads: int | None = None,
) -> MLXConversionResult:
    """Convert a Hugging Face safetensors checkpoint to an MLX-quantized model directory.

    Args:
        model: the model directory (``config.json``, ``model.safetensors`` or sharded
            ``model-*.safetensors`` with its index, tokenizer files).
        outdir: the directory to create (ignored for ``dry_run``); it must not exist or be empty.
            It appears (renamed from a temporary sibling) only when complete.
        quant: an MLX preset or mode: ``"int4"`` (affine 4 bits, group 32), ``"int8"`` (affine 8,
            group 64), ``"mxfp4"``, ``"nvfp4"``, ``"mxfp8"``, ``"affine"`` (MLX's default 4/64).
        bits, group_size: override the preset's.
        dtype: convert the float tensors to ``"float16"``, ``"bfloat16"`` or ``"float32"`` first
            (scales, biases and unquantized tensors then have that dtype). ``"auto"`` does what
            ``mlx_lm.convert`` does: config.json's ``torch_dtype`` (or ``text_config.dtype``) when it
            names one of those; ``None`` keeps each tensor's dtype.
        max_shard_size: bytes per shard (mlx_lm's 5 GiB by default).
        dry_run: plan only: the per-tensor table and the output size; nothing is written.
        quiet: no progress output.
        allow_requantize: convert even if config.json declares a quantization already.
        nthreads: quantization threads (default: all).

    Returns:
        An :class:`MLXConversionResult`.

    Raises:
        FormatError: no config.json or no safetensors weights, or an already quantized checkpoint.
        GGQuantIOError: the output directory exists and is not empty.
    """
    from .safetensors import SafetensorsWriter, load_checkpoint

    t0 = time.perf_counter()
    src = Path(model)
    mode, b, g = _mlx.resolve(quant, bits, group_size)
    probe = _mlx.quantize(np.zeros((1, g), np.float32), mode, b, g)  # validates the mode, bits, group size
    del probe
    cfg_path = src / "config.json"
    if not cfg_path.is_file():
        raise FormatError(f"{src}: no config.json")
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    if not allow_requantize and ("quantization" in config or "quantization_config" in config):
        raise FormatError(f"{src}: config.json declares a quantization already (pass allow_requantize=True)")
    ckpt = load_checkpoint(src)
    try:
        # a tied output matrix: mlx_lm's sanitize drops lm_head.weight but would keep its scales
        tied = config.get("tie_word_embeddings", config.get("text_config", {}).get("tie_word_embeddings", False))
        if dtype == "auto":
            dtype = config.get("torch_dtype") or (config.get("text_config") or {}).get("dtype")
            dtype = dtype if dtype in _DTYPE_NAMES else None
        elif dtype is not None and dtype not in _DTYPE_NAMES:
            raise GGQuantError(f"dtype {dtype!r}: expected one of {sorted(_DTYPE_NAMES)}, 'auto' or None")
        cast = None if dtype is None else _DTYPE_NAMES[dtype]
        plan = _plan(ckpt, mode, b, g, {"lm_head.weight"} if tied else set(), cast)
        quantization = {"group_size": g, "bits": b, "mode": mode}
        groups = _shards(plan, int(max_shard_size))
        n = len(groups)
        names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        shards = {fn: [o[0] for t in grp for o in t.outputs] for fn, grp in zip(names, groups)}
        total = sum(t.nbytes for t in plan)
        source_bytes = sum(math.prod(t.shape) * _ST_ITEMSIZE.get(ckpt.dtype(t.name), 1) for t in plan)
        out_config = dict(config)
        out_config.pop("_name_or_path", None)
        out_config["quantization"] = quantization
        out_config["quantization_config"] = dict(quantization)
        out_config = dict(sorted(out_config.items()))
        result = MLXConversionResult(plan, quantization, shards, total, None, 0.0, source_bytes, out_config)
        if dry_run:
            result.seconds = time.perf_counter() - t0
            return result
        if outdir is None:
            raise GGQuantError("convert_mlx: an output directory is required unless dry_run")
        dst = Path(outdir)
        if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
            raise GGQuantIOError(f"{dst} exists and is not an empty directory")
        tmp = dst.parent / f".{dst.name}.partial-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        progress = _Progress(source_bytes, quiet)
        try:
            for fn, grp in zip(names, groups):
                decl = {o[0]: (o[1], o[2]) for t in grp for o in t.outputs}
                with SafetensorsWriter(tmp / fn, decl, {"format": "mlx"}) as w:
                    for t in grp:
                        progress.start(t.name, f"{mode} {b}b/{g}" if t.quantized else t.dtype)
                        arr = ckpt[t.name]
                        src_dtype = ckpt.dtype(t.name)
                        if src_dtype != t.dtype:
                            arr = _to_dtype(arr, src_dtype, t.dtype)
                        if t.quantized:
                            q = _mlx._quantize_source(arr, _FLOAT_DTYPES[t.dtype], mode, b, g, nthreads, t.name)
                            for (oname, _, _), a in zip(t.outputs, q.arrays):
                                w.write(oname, a)
                        else:
                            w.write(t.name, np.ascontiguousarray(arr))
                        progress.update(math.prod(t.shape) * _ST_ITEMSIZE.get(src_dtype, 1))
            index = {
                "metadata": {"total_size": total},
                "weight_map": {k: fn for fn, ks in shards.items() for k in sorted(ks)},
            }
            index["weight_map"] = dict(sorted(index["weight_map"].items()))
            (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=4), encoding="utf-8")
            (tmp / "config.json").write_text(json.dumps(out_config, indent=4), encoding="utf-8")
            _copy_side_files(src, tmp)
            if dst.exists():
                dst.rmdir()
            os.replace(tmp, dst)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            progress.close()
        result.path = dst
        result.seconds = time.perf_counter() - t0
        return result
    finally:
        ckpt.close()


def run_cli(args: Any) -> int:
    """``ggquant convert DIR --format mlx -q int4 -o OUT_DIR``: the CLI's MLX branch.

    Uses ``args.model``, ``outfile``, ``quant``, ``group_size``, ``dtype``, ``split_max_size``
    (the shard size), ``dry_run``, ``quiet``, ``allow_requantize`` and ``threads``; GGUF-only
    options are rejected.
    """
    for opt in ("imatrix", "tensor_type", "token_embedding_type", "output_tensor_type", "split_max_tensors"):
        if getattr(args, opt, None):
            print(f"ggquant convert: error: --{opt.replace('_', '-')} applies to --format gguf only", file=sys.stderr)
            return 2
    if getattr(args, "pure", False):
        print("ggquant convert: error: --pure applies to --format gguf only", file=sys.stderr)
        return 2
    quant = getattr(args, "quant", None) or "int4"
    if not _mlx.is_mlx_type(quant):
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
            group_size=getattr(args, "group_size", None),
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


__all__ = ["MAX_SHARD_BYTES", "MLXConversionResult", "MLXTensorPlan", "convert_mlx"]
