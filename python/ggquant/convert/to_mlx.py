"""The MLX end: Hugging Face checkpoint -> MLX-quantized model directory that ``mlx_lm.load`` opens.

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
``mlx_lm.convert``. Tensors are read memory-mapped and quantized one at a time while a writer thread
writes the previous one; the output directory appears only when complete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import mlx as _mlx
from ..errors import GGQuantError
from ..fileio import check_not_an_input, fs_path, sigterm_as_interrupt
from ..hf.checkpoint import Checkpoint, cast_float, release_pages
from ..safetensors import SafetensorsWriter, numpy_dtype
from .core import Progress, atomic_directory, input_files, open_model

#: Shard size limit, as mlx_lm (5 GiB).
MAX_SHARD_BYTES = 5 << 30

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_KERNEL_CODES = {"F32": "f32", "F16": "f16", "BF16": "bf16"}  # the float dtypes MLX quantizes from
_DTYPE_NAMES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * numpy_dtype(dtype).itemsize


@dataclass
class MLXTensorPlan:
    """One source tensor: what it becomes.

    Attributes:
        name, shape: the checkpoint's.
        dtype: safetensors dtype after the dtype conversion (the source's unless converted).
        quantized: whether it becomes codes + scales (+ biases).
        outputs: ``(name, safetensors dtype, shape)`` of each tensor written for it.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantized: bool
    outputs: list[tuple[str, str, tuple[int, ...]]]

    @property
    def nbytes(self) -> int:
        return sum(_nbytes(d, s) for _, d, s in self.outputs)


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
        source_bytes: bytes of the source tensors read.
        config: the config.json written.
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
        and dtype in _KERNEL_CODES
        and shape[-1] % group_size == 0
        and "norm" not in name.rsplit(".", 2)[-2]
    )


def _plan(ck: Checkpoint, mode: str, bits: int, gs: int, skip: set[str], cast: str | None) -> list[MLXTensorPlan]:
    out = []
    for name in sorted(ck.names()):
        if name in skip:
            continue
        shape, dtype = ck.shape(name), ck.dtype(name)
        if cast is not None and dtype in _KERNEL_CODES:
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


def _copy_side_files(src: Path, dst: Path) -> None:
    for p in sorted(src.iterdir()):
        if not p.is_file() or p.name == "config.json" or p.name in _WEIGHT_INDEXES:
            continue
        if p.name.endswith(_WEIGHT_SUFFIXES):
            continue
        shutil.copy2(p, dst / p.name)


def _write_arrays(w: SafetensorsWriter, arrays: list[tuple[str, np.ndarray]]) -> None:
    for name, a in arrays:
        w.write(name, a)


def _arrays(ck: Checkpoint, t: MLXTensorPlan, mode: str, b: int, g: int,
            nthreads: int | None) -> list[tuple[str, np.ndarray]]:
    """What is written for one source tensor: ``(name, array)`` of each of its outputs."""
    stored = ck.stored(t.name)
    src_dtype = ck.dtype(t.name)
    arr = stored if src_dtype == t.dtype else cast_float(stored, src_dtype, t.dtype)
    if t.quantized:
        qt = _mlx.quantize_raw(arr, _KERNEL_CODES[t.dtype], mode, b, g, nthreads, t.name)
        release_pages(stored)  # read: resident memory stays bounded by the tensors in flight
        return [(oname, a) for (oname, _, _), a in zip(t.outputs, qt.arrays)]
    return [(t.name, np.ascontiguousarray(arr))]


def _write(ck: Checkpoint, src: Path, tmp: Path, groups: list[list[MLXTensorPlan]], names: list[str],
           result: MLXConversionResult, nthreads: int | None, progress: Progress) -> None:
    q = result.quantization
    mode, b, g = q["mode"], q["bits"], q["group_size"]
    # a writer thread writes each tensor while the next one is read and quantized (two in memory at most)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ggquant-writer") as writer:
        for fn, grp in zip(names, groups):
            decl = {o[0]: (o[1], o[2]) for t in grp for o in t.outputs}
            with SafetensorsWriter(tmp / fn, decl, {"format": "mlx"}) as w:
                pending: tuple[Future[None], int] | None = None
                try:
                    for t in grp:
                        progress.start(t.name, f"{mode} {b}b/{g}" if t.quantized else t.dtype)
                        arrays = _arrays(ck, t, mode, b, g, nthreads)
                        if pending is not None:
                            pending[0].result()
                            progress.update(pending[1])
                        pending = (writer.submit(_write_arrays, w, arrays), _nbytes(ck.dtype(t.name), t.shape))
                        del arrays
                    if pending is not None:
                        pending[0].result()
                        progress.update(pending[1])
                        pending = None
                finally:  # the file is aborted or closed only when no write is in progress
                    if pending is not None:
                        wait([pending[0]])
    index = {
        "metadata": {"total_size": result.total_size},
        "weight_map": dict(sorted((k, fn) for fn, ks in result.shards.items() for k in ks)),
    }
    (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=4), encoding="utf-8")
    (tmp / "config.json").write_text(json.dumps(result.config, indent=4), encoding="utf-8")
    _copy_side_files(src, tmp)


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
    """Convert a Hugging Face checkpoint to an MLX-quantized model directory.

    Args:
        model: the model directory (``config.json``, ``model.safetensors`` or sharded
            ``model-*.safetensors`` with its index, or ``pytorch_model*.bin``; tokenizer files).
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
        allow_requantize: convert a checkpoint that is already quantized (see
            :func:`ggquant.convert.core.check_not_quantized`).
        nthreads: quantization threads (default: all).

    Returns:
        An :class:`MLXConversionResult`.

    Raises:
        FormatError: no config.json or no weights, or an already quantized checkpoint.
        GGQuantIOError: the output directory exists and is not empty.

    Example:
        >>> import ggquant
        >>> r = ggquant.convert_mlx("path/to/Llama-3.2-1B", "llama-int4-mlx", "int4")  # doctest: +SKIP
        >>> print(r.format())                                                           # doctest: +SKIP
    """
    t0 = time.perf_counter()
    src = Path(fs_path(model, "model directory"))
    mode, b, g = _mlx.resolve(quant, bits, group_size)
    _mlx.quantize(np.zeros((1, g), np.float32), mode, b, g)  # validates the mode, bits and group size
    if dtype not in (None, "auto") and dtype not in _DTYPE_NAMES:
        raise GGQuantError(f"dtype {dtype!r}: expected one of {sorted(_DTYPE_NAMES)}, 'auto' or None")
    hf = open_model(src, allow_requantize=allow_requantize)
    try:
        config, ck = hf.hparams, hf.checkpoint
        text = config.get("text_config") or {}
        # a tied output matrix: mlx_lm's sanitize drops lm_head.weight but would keep its scales
        tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        if dtype == "auto":
            dtype = config.get("torch_dtype") or text.get("dtype")
            dtype = dtype if dtype in _DTYPE_NAMES else None
        cast = None if dtype is None else _DTYPE_NAMES[dtype]
        plan = _plan(ck, mode, b, g, {"lm_head.weight"} if tied else set(), cast)
        quantization = {"group_size": g, "bits": b, "mode": mode}
        groups = _shards(plan, int(max_shard_size))
        n = len(groups)
        names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        shards = {fn: [o[0] for t in grp for o in t.outputs] for fn, grp in zip(names, groups)}
        source_bytes = sum(_nbytes(ck.dtype(t.name), t.shape) for t in plan)
        out_config = {k: v for k, v in config.items() if k != "_name_or_path"}
        out_config["quantization"] = quantization
        out_config["quantization_config"] = dict(quantization)
        result = MLXConversionResult(plan, quantization, shards, sum(t.nbytes for t in plan), None, 0.0,
                                     source_bytes, dict(sorted(out_config.items())))
        if dry_run:
            result.seconds = time.perf_counter() - t0
            return result
        if outdir is None:
            raise GGQuantError("convert_mlx: an output directory is required unless dry_run")
        dst = Path(fs_path(outdir, "output folder"))
        check_not_an_input(dst, input_files(hf.model_dir), "the MLX output")
        with sigterm_as_interrupt(), atomic_directory(dst) as tmp:  # SIGTERM cleans up as Ctrl-C does
            progress = Progress(source_bytes, quiet)
            try:
                _write(ck, src, tmp, groups, names, result, nthreads, progress)
            finally:
                progress.close()
        result.path = dst
        result.seconds = time.perf_counter() - t0
        return result
    finally:
        hf.close()


__all__ = ["MAX_SHARD_BYTES", "MLXConversionResult", "MLXTensorPlan", "convert_mlx"]
