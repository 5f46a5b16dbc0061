"""The MLX end: Hugging Face checkpoint -> MLX-quantized model directory that ``mlx_lm.load`` opens.

The output is what ``mlx_lm.convert --quantize`` writes: safetensors shards
(``model.safetensors`` or ``model-0000i-of-0000n.safetensors``, ``{"format": "mlx"}`` metadata)
with ``NAME.weight`` (uint32 codes), ``NAME.scales`` and, for affine, ``NAME.biases`` per quantized
layer, ``model.safetensors.index.json``, a ``config.json`` with the ``quantization`` (and
``quantization_config``) section ``{"group_size", "bits", "mode"}`` (plus per-layer entries where
the layers differ, as mlx_lm writes them), and the tokenizer files copied.
Tensor names stay the checkpoint's: ``mlx_lm`` renames them with the model's ``sanitize`` when it
loads, as it does for the original checkpoint.

Which tensors are quantized, and how, is :mod:`ggquant.mlx_recipes`' choice: Ollama's rule for
``int4`` and the other ``ollama create --quantize`` names, ``mlx_lm.convert``'s uniform one
(``affine``, ``mlx:<mode>``, ``bits``/``group_size``) or its ``--quant-predicate`` recipes; what is
not quantized is copied in its dtype, and ``mlx_lm`` recognises per layer from the presence of
``.scales`` which layers are quantized. A checkpoint with tied embeddings loses its (redundant)
``lm_head.weight``, as in ``mlx_lm.convert``. Tensors are read memory-mapped and quantized one at a
time while a writer thread writes the previous one (quantized tensors straight into their places in the
preallocated, memory-mapped file); the output directory appears only when complete.
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
from ..mlx_recipes import KERNEL_CODES as _KERNEL_CODES
from ..mlx_recipes import MLXRecipe, TensorQuant, mlx_recipe
from ..progress import Progress
from ..safetensors import SafetensorsWriter, numpy_dtype
from .core import atomic_directory, input_files, open_model, prefault_ahead, spare_core

#: Shard size limit, as mlx_lm (5 GiB).
MAX_SHARD_BYTES = 5 << 30

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_DTYPE_NAMES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}


def _nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return math.prod(shape) * numpy_dtype(dtype).itemsize


@dataclass
class MLXTensorPlan:
    """One source tensor: what it becomes.

    Attributes:
        name, shape: the checkpoint's.
        dtype: safetensors dtype after the dtype conversion (the source's unless converted).
        quant: ``(mode, bits, group_size)`` when it becomes codes + scales (+ biases), else None.
        outputs: ``(name, safetensors dtype, shape)`` of each tensor written for it.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: TensorQuant | None
    outputs: list[tuple[str, str, tuple[int, ...]]]

    @property
    def quantized(self) -> bool:
        return self.quant is not None

    @property
    def label(self) -> str:
        """``"affine 4b/64"`` for a quantized tensor, else its dtype."""
        return self.dtype if self.quant is None else "{} {}b/{}".format(*self.quant)

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
        recipe: the per-tensor rule (:attr:`ggquant.mlx_recipes.MLXRecipe.kind`: ``"ollama:int4"``,
            ``"uniform"``, ``"mlx_lm:mixed_3_4"``, ...).
    """

    tensors: list[MLXTensorPlan]
    quantization: dict[str, Any]
    shards: dict[str, list[str]]
    total_size: int
    path: Path | None
    seconds: float = 0.0
    source_bytes: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    recipe: str = "uniform"

    def format(self) -> str:
        """The plan as a table with the output size."""
        lines = [f"{'tensor':60} {'shape':>18} {'from':>5} -> {'to':<14} {'bytes':>14}"]
        for t in self.tensors:
            shape = "x".join(map(str, t.shape))
            lines.append(f"{t.name[:60]:60} {shape:>18} {t.dtype:>5} -> {t.label:<14} {t.nbytes:>14,}")
        nq = sum(t.quantized for t in self.tensors)
        lines.append(
            f"{nq} of {len(self.tensors)} tensors quantized ({self.recipe}); {len(self.shards)} shard(s); "
            f"{self.total_size:,} bytes of tensors (source {self.source_bytes:,})"
        )
        return "\n".join(lines)


def _plan(ck: Checkpoint, recipe: MLXRecipe, skip: set[str], cast: str | None) -> list[MLXTensorPlan]:
    out = []
    for name in sorted(ck.names()):
        if name in skip:
            continue
        shape, dtype = ck.shape(name), ck.dtype(name)
        if cast is not None and dtype in _KERNEL_CODES:
            dtype = cast  # the dtype the tensor is converted to (and quantized from)
        q = recipe.tensor(name, shape, dtype)
        if q is not None:
            mode, bits, gs = q
            base = name[: -len("weight")]
            sdt = dtype if mode == "affine" else "U8"
            outs = [
                (name, "U32", (*shape[:-1], shape[-1] * bits // 32)),
                (base + "scales", sdt, (*shape[:-1], shape[-1] // gs)),
            ]
            if mode == "affine":
                outs.append((base + "biases", sdt, (*shape[:-1], shape[-1] // gs)))
            out.append(MLXTensorPlan(name, shape, dtype, q, outs))
        else:
            out.append(MLXTensorPlan(name, shape, dtype, None, [(name, dtype, shape)]))
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


def _arrays(ck: Checkpoint, t: MLXTensorPlan, nthreads: int | None, w: SafetensorsWriter) -> list[tuple[str, np.ndarray]]:
    """What is written for one source tensor: ``(name, array)`` of each of its outputs (a quantized
    tensor's outputs are quantized into their places in the file where it has them)."""
    stored = ck.stored(t.name)
    src_dtype = ck.dtype(t.name)
    arr = stored if src_dtype == t.dtype else cast_float(stored, src_dtype, t.dtype)
    if t.quant is not None:
        found = [w.tensor_buffer(oname) for oname, _, _ in t.outputs]
        places = [p for p in found if p is not None]
        qt = _mlx.quantize_raw(arr, _KERNEL_CODES[t.dtype], *t.quant, nthreads, t.name,
                               places if len(places) == len(found) else None)
        release_pages(stored)  # read: resident memory stays bounded by the tensors in flight
        return [(oname, a) for (oname, _, _), a in zip(t.outputs, qt.arrays)]
    return [(t.name, np.ascontiguousarray(arr))]


def _write(ck: Checkpoint, src: Path, tmp: Path, groups: list[list[MLXTensorPlan]], names: list[str],
           result: MLXConversionResult, nthreads: int | None, progress: Progress) -> None:
    # a writer thread writes each tensor while the next one is read and quantized (two in memory at most)
    spare = spare_core(nthreads)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ggquant-writer") as writer:
        for fn, grp in zip(names, groups):
            decl = {o[0]: (o[1], o[2]) for t in grp for o in t.outputs}
            with SafetensorsWriter(tmp / fn, decl, {"format": "mlx"}) as w:
                pending: tuple[Future[None], int] | None = None
                try:
                    for k, t in enumerate(grp):
                        progress.start(t.name, t.label)
                        if spare and k + 1 < len(grp) and grp[k + 1].quantized:
                            prefault_ahead(writer, [w.tensor_buffer(o[0]) for o in grp[k + 1].outputs])
                        arrays = _arrays(ck, t, nthreads, w)
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
    quant: str | None = None,
    *,
    bits: int | None = None,
    group_size: int | None = None,
    quant_predicate: str | None = None,
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
        quant: ``"int4"`` (the default), ``"int8"``, ``"nvfp4"``, ``"mxfp4"``, ``"mxfp8"``: what
            ``ollama create --quantize`` writes (Ollama's per-tensor rule: int4 is affine 4 bits,
            group 64, with lm_head, k_proj, v_proj and down_proj at 8 bits and the embedding kept);
            ``"affine"`` or ``"mlx:<mode or preset>"``: one type on every matrix, as
            ``mlx_lm.convert -q`` (``"mlx:int4"`` = affine 4 bits, group 32). See
            :mod:`ggquant.mlx_recipes`.
        bits, group_size: ``mlx_lm.convert``'s ``--q-bits`` / ``--q-group-size`` (``quant`` then
            defaults to ``"affine"``; not with Ollama's types).
        quant_predicate: ``"mixed_3_4"``, ``"mixed_2_6"``, ``"mixed_3_6"`` or ``"mixed_4_6"``:
            ``mlx_lm.convert --quant-predicate``'s per-layer bits, config.json as mlx_lm writes it.
        dtype: convert the float tensors to ``"float16"``, ``"bfloat16"`` or ``"float32"`` first
            (scales, biases and unquantized tensors then have that dtype). ``"auto"`` does what
            the tool whose rule is used does: for mlx_lm's, config.json's ``torch_dtype`` (or
            ``text_config.dtype``) when it names one of those; for Ollama's types, each tensor's
            own dtype, which is also what ``None`` keeps.
        max_shard_size: bytes per shard (mlx_lm's 5 GiB by default).
        dry_run: plan only: the per-tensor table and the output size; nothing is written.
        quiet: no progress output.
        allow_requantize: convert a checkpoint that is already quantized (see
            :func:`ggquant.convert.core.check_not_quantized`).
        nthreads: quantization threads (default: all).

    Returns:
        An :class:`MLXConversionResult`.

    Raises:
        FormatError: no config.json or no weights, an already quantized checkpoint, or a model the
            rule cannot be applied to (see :func:`ggquant.mlx_recipes.mlx_recipe`).
        GGQuantError: an unknown mode or recipe, or options the chosen tool does not combine.
        GGQuantIOError: the output directory exists and is not empty.

    Example:
        >>> import ggquant
        >>> r = ggquant.convert_mlx("path/to/Llama-3.2-1B", "llama-int4-mlx", "int4")  # doctest: +SKIP
        >>> print(r.format())                                                           # doctest: +SKIP
    """
    t0 = time.perf_counter()
    src = Path(fs_path(model, "model directory"))
    if dtype not in (None, "auto") and dtype not in _DTYPE_NAMES:
        raise GGQuantError(f"dtype {dtype!r}: expected one of {sorted(_DTYPE_NAMES)}, 'auto' or None")
    hf = open_model(src, allow_requantize=allow_requantize)
    try:
        config, ck = hf.hparams, hf.checkpoint
        text = config.get("text_config") or {}
        # a tied output matrix: mlx_lm's sanitize drops lm_head.weight but would keep its scales
        tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
        recipe = mlx_recipe(quant, bits, group_size, quant_predicate, config=config, names=ck.names())
        if dtype == "auto":  # Ollama quantizes each tensor from its stored dtype
            dtype = None if recipe.kind.startswith("ollama:") else config.get("torch_dtype") or text.get("dtype")
            dtype = dtype if dtype in _DTYPE_NAMES else None
        cast = None if dtype is None else _DTYPE_NAMES[dtype]
        plan = _plan(ck, recipe, {"lm_head.weight"} if tied else set(), cast)
        quantization = recipe.quantization((t.name, t.quant) for t in plan)
        groups = _shards(plan, int(max_shard_size))
        n = len(groups)
        names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        shards = {fn: [o[0] for t in grp for o in t.outputs] for fn, grp in zip(names, groups)}
        source_bytes = sum(_nbytes(ck.dtype(t.name), t.shape) for t in plan)
        out_config = {k: v for k, v in config.items() if k != "_name_or_path"}
        out_config["quantization"] = quantization
        out_config["quantization_config"] = dict(quantization)
        result = MLXConversionResult(plan, quantization, shards, sum(t.nbytes for t in plan), None, 0.0,
                                     source_bytes, dict(sorted(out_config.items())), recipe.kind)
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
