"""GGUF in, GGUF out: what ``llama-quantize IN.gguf OUT.gguf PRESET`` does, byte for byte.

:func:`quantize_file` reads a GGUF file (or a split set), chooses every tensor's type as
llama-quantize does for the preset (:mod:`ggquant.plan`), and writes a file identical to
``llama_model_quantize``'s with the same arguments:

- metadata: the input's key/values in file order with their types, then ``general.quantization_version``
  and ``general.file_type`` moved last, ``split.*`` dropped, and with an imatrix file the
  ``quantize.imatrix.file/.dataset/.entries_count/.chunks_count`` keys llama-quantize adds;
- tensors in llama.cpp's order (the non-``blk`` tensors by name, then each block's by name), or with
  ``keep_split`` shard by shard in input order, each output shard holding its input shard's tensors;
- a tensor whose type does not change is copied byte for byte; the others are quantized from their
  stored F32/F16/BF16 values (blocks of a quantized type are dequantized first, with ``allow_requantize``),
  row chunk by row chunk with their imatrix slice.

The tensors go through the converter's overlapped loop (:func:`ggquant.convert.stream.run_pass`): at most
about two tensors are held in memory (the input is memory-mapped); the output appears only when
complete (all shards or none).

Example:
    >>> import ggquant
    >>> r = ggquant.quantize_file("model-f16.gguf", "model-q4_k_m.gguf", "Q4_K_M")  # doctest: +SKIP
    >>> r.plan.tensor("output.weight").type.name                                    # doctest: +SKIP
    'Q6_K'
"""

from __future__ import annotations

import functools
import os
import time
import warnings as _warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .convert.core import Job, ShardedSink
from .convert.stream import run_pass
from .errors import GGQuantError, GGQuantWarning, UnsupportedTypeError
from .gguf import GGUFSplitReader, GGUFTensor, GGUFValueType, GGUFWriter, read_gguf_split
from .hf.archs import OutTensor
from .imatrix import read_imatrix
from .layout import Entry, imatrix_entries, quantized_metadata
from .plan import LLAMA_FTYPE, ModelInfo, Plan, plan_quantization, tensor_order_key
from .qtypes import GGMLType, type_info

_FTYPE_NAMES = {v: k for k, v in LLAMA_FTYPE.items()}


@dataclass
class RequantizeResult:
    """What :func:`quantize_file` did (or, with ``dry_run``, would do).

    Attributes:
        plan: the per-tensor :class:`~ggquant.plan.Plan`, tensors in the order they are written.
        paths: the files written (none for a dry run).
        metadata: the output's key/values in write order (of the first shard).
        tensor_bytes: bytes of tensor data written (or predicted).
        seconds: wall time.
        warnings: what llama-quantize would log as a warning (missing imatrix entries, fallbacks).
    """

    plan: Plan
    paths: list[str]
    metadata: dict[str, Any]
    tensor_bytes: int
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def format(self) -> str:
        """The plan as a table (ggml shapes, types, bytes) with the totals."""
        return self.plan.format()


def _elem(et: GGUFValueType | None) -> int | None:
    return None if et is None else int(et)


def _first(v: Any) -> int:
    # per-layer arrays (e.g. head_count_kv of sliding-window models): llama.cpp's type choice reads layer 0
    if isinstance(v, (np.ndarray, list)):
        return int(v[0]) if len(v) else 0
    return int(v)


def _model_info(path: str, meta: Mapping[str, Any]) -> ModelInfo:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise GGQuantError(f"{path}: no general.architecture; not a llama.cpp model file")
    n_head = _first(meta.get(f"{arch}.attention.head_count", 1))
    return ModelInfo(arch=arch, n_layer=_first(meta.get(f"{arch}.block_count", 0)), n_head=n_head,
                     n_head_kv=_first(meta.get(f"{arch}.attention.head_count_kv", n_head)),
                     n_expert=_first(meta.get(f"{arch}.expert_count", 0)))


def _file_type_name(meta: Mapping[str, Any], tensors: Sequence[GGUFTensor]) -> str:
    ft = meta.get("general.file_type")
    if isinstance(ft, int) and (ft & ~1024) in _FTYPE_NAMES:
        return _FTYPE_NAMES[ft & ~1024]
    counts = Counter(t.type for t in tensors if type_info(t.type).is_quantized)
    return type_info(counts.most_common(1)[0][0]).name if counts else "unknown"


def _n_dims(shape: tuple[int, ...]) -> int:
    ne = list(reversed(shape)) or [1]
    n = len(ne)
    while n > 1 and ne[n - 1] == 1:
        n -= 1
    return n


def _imatrix(imatrix: str | os.PathLike[str] | Mapping[str, Any] | None) -> tuple[dict[str, np.ndarray] | None, list[Entry]]:
    """Per-tensor weights (flat, ``ne0 * n_expert`` values) and the keys llama-quantize records."""
    if imatrix is None:
        return None, []
    if isinstance(imatrix, Mapping):
        return {k: np.ascontiguousarray(v, np.float32).reshape(-1) for k, v in imatrix.items()}, []
    im = read_imatrix(imatrix)
    weights = {k: np.ascontiguousarray(v, np.float32).reshape(-1) for k, v in im.weights.items()}
    return weights or None, imatrix_entries(imatrix, im)


def _stored(data: np.ndarray, type: GGMLType) -> tuple[np.ndarray, GGMLType]:
    return data, type


def _out_tensor(t: GGUFTensor) -> OutTensor:
    """One GGUF tensor as the tensor loop reads it: its stored blocks, one part per expert for 3-D tensors
    (copied as they are where the type does not change, else converted; see :func:`ggquant.convert.stream.run_pass`)."""
    subs = [t.data[i] for i in range(t.shape[0])] if len(t.shape) == 3 else [t.data]
    return OutTensor(t.name, t.shape, [functools.partial(_stored, sub, t.type) for sub in subs])


def quantize_file(
    infile: str | os.PathLike[str],
    outfile: str | os.PathLike[str] | None,
    preset: str | GGMLType = "Q4_K_M",
    *,
    imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    tensor_types: Iterable[str] | Mapping[str, Any] | None = None,
    output_tensor_type: GGMLType | str | None = None,
    token_embedding_type: GGMLType | str | None = None,
    pure: bool = False,
    allow_requantize: bool = False,
    keep_split: bool = False,
    dry_run: bool = False,
    nthreads: int | None = None,
    quiet: bool = True,
) -> RequantizeResult:
    """Requantize a GGUF file as ``llama-quantize`` does, with an identical output file.

    Args:
        infile: the input ``.gguf`` (any shard of a split set opens the whole set).
        outfile: the output file; with ``keep_split`` the prefix of the shards
            ``<prefix>-0000i-of-0000N.gguf`` (a trailing ``.gguf`` is dropped, as llama-quantize does).
            Ignored for ``dry_run``.
        preset: a llama.cpp preset (``"Q4_K_M"``, ``"Q8_0"``, ``"F16"``...) or one ggml type (``"q4_K"``).
        imatrix: an imatrix file from llama-imatrix (GGUF or legacy ``.dat``; its name, first dataset,
            entry and chunk counts are recorded as llama-quantize records them), or a mapping
            ``{tensor name: weights}`` (recorded nowhere).
        tensor_types: ``["REGEX=TYPE", ...]`` overrides (``--tensor-type``).
        output_tensor_type / token_embedding_type / pure: as llama-quantize's options.
        allow_requantize: convert tensors that are quantized already (they are dequantized first).
        keep_split: one output shard per input shard (``--keep-split``).
        dry_run: plan only; read no tensor data, write nothing.
        nthreads: quantization threads (the bytes never depend on it).
        quiet: no per-tensor progress lines on stderr.

    Returns:
        A :class:`RequantizeResult`.

    Warns:
        GGQuantWarning: each of ``RequantizeResult.warnings`` (imatrix entries not found, fallbacks).

    Raises:
        GGQuantError: the input is already quantized (without ``allow_requantize``), input and output
            are the same file, a preset needs an importance matrix that is missing, or an imatrix
            entry has the wrong size; :class:`ggquant.GGUFError` for a malformed input;
            :class:`ggquant.UnsupportedTypeError` for a type this build cannot quantize.

    Example:
        >>> import ggquant
        >>> ggquant.quantize_file("m-f16.gguf", None, "Q4_K_M", dry_run=True).plan.file_type  # doctest: +SKIP
        15
    """
    t0 = time.perf_counter()
    inp = os.fspath(infile)
    weights, imatrix_keys = _imatrix(imatrix)
    with read_gguf_split(inp) as reader:
        readers = reader.readers if isinstance(reader, GGUFSplitReader) else [reader]
        shard_of = {t.name: i for i, r in enumerate(readers) for t in r.tensors}
        if keep_split:  # (source shard, offset): the input's own order
            order = [t for r in readers for t in sorted(r.tensors, key=lambda t: t.offset)]
        else:
            order = sorted(reader.tensors, key=lambda t: tensor_order_key(t.name))
        minfo = _model_info(inp, reader.metadata)
        plan = plan_quantization([(t.name, t.shape, t.type) for t in order], preset, minfo,
                                 has_imatrix=weights is not None, tensor_types=tensor_types,
                                 token_embedding_type=token_embedding_type, output_tensor_type=output_tensor_type,
                                 pure=pure)
        warnings = list(plan.warnings)
        converted = [(t, p) for t, p in zip(order, plan.tensors) if t.type != p.type]
        requant = [t for t, _ in converted if type_info(t.type).is_quantized]
        if requant and not allow_requantize:
            raise GGQuantError(f"{inp} is already quantized ({_file_type_name(reader.metadata, reader.tensors)}); "
                               f"requantizing loses quality: pass --allow-requantize (allow_requantize=True) to "
                               f"do it anyway")
        problems: list[GGQuantError] = []
        for t, p in converted:
            if not type_info(t.type).can_dequantize and type_info(t.type).is_quantized:
                problems.append(UnsupportedTypeError(f"{inp}: {t.name} is {type_info(t.type).name}, which ggquant "
                                                     f"cannot dequantize"))
            if not type_info(p.type).can_quantize:
                problems.append(UnsupportedTypeError(f"{t.name}: this build cannot quantize to {type_info(p.type).name}"))
            w = None if weights is None else weights.get(t.name)
            if weights is not None and w is None:
                warnings.append(f"did not find imatrix weights for {t.name}")
            n_exp = t.shape[0] if len(t.shape) == 3 else 1
            if w is not None and w.size != t.shape[-1] * n_exp and t.name not in ("token_embd.weight",
                                                                                 "per_layer_token_embd.weight"):
                problems.append(GGQuantError(f"imatrix size {w.size} is different from tensor size "
                                             f"{t.shape[-1] * n_exp} for {t.name}"))
            if p.requires_imatrix and w is None:
                problems.append(GGQuantError(f"{t.name}: {type_info(p.type).name} in preset {plan.preset} requires an "
                                             f"importance matrix (imatrix=, CLI --imatrix)"))
        if problems and not dry_run:
            raise problems[0]
        warnings += [str(p) for p in problems]
        for message in warnings:  # scripts see them through `warnings`; the CLI prints them on stderr
            _warnings.warn(message, GGQuantWarning, stacklevel=2)
        copied = [(k, v, int(reader.kv_types[k][0]), _elem(reader.kv_types[k][1])) for k, v in reader.metadata.items()]
        kvs = quantized_metadata(copied, plan.file_type, imatrix_keys)
        result = RequantizeResult(plan, [], {e[0]: e[1] for e in kvs}, sum(p.nbytes for p in plan.tensors),
                                  warnings=warnings)
        if dry_run:
            result.seconds = time.perf_counter() - t0
            return result
        if outfile is None:
            raise GGQuantError("outfile is required unless dry_run=True")
        out = os.fspath(outfile)
        groups: list[list[int]] = [list(range(len(order)))]
        if keep_split:
            n_split = max(shard_of.values()) + 1
            groups = [[i for i, t in enumerate(order) if shard_of[t.name] == s] for s in range(n_split)]
            prefix = out[:-5] if out.endswith(".gguf") else out
            paths = [f"{prefix}-{s + 1:05d}-of-{n_split:05d}.gguf" for s in range(n_split)]
        else:
            paths = [out]
        inputs = {os.path.realpath(r.path) for r in readers}
        same = [p for p in paths if os.path.realpath(p) in inputs]
        if same:
            raise GGQuantError(f"input and output files are the same: {same[0]}")
        _write(paths, groups, order, plan, kvs, weights, nthreads, quiet)
        result.paths = paths
    result.seconds = time.perf_counter() - t0
    return result


def _write(paths: list[str], groups: list[list[int]], order: list[GGUFTensor], plan: Plan,
           kvs: list[Entry], weights: dict[str, np.ndarray] | None, nthreads: int | None,
           quiet: bool) -> None:
    writers = [GGUFWriter(p) for p in paths]
    sink = ShardedSink(writers, {order[i].name: s for s, idx in enumerate(groups) for i in idx})
    try:
        for s, (w, idx) in enumerate(zip(writers, groups)):
            if s == 0:
                for k, v, vt, et in kvs:
                    w.add_kv(k, v, GGUFValueType(vt), None if et is None else GGUFValueType(et))
            if len(paths) > 1:
                w.add_kv("split.no", s, GGUFValueType.UINT16)
                w.add_kv("split.count", len(paths), GGUFValueType.UINT16)
                w.add_kv("split.tensors.count", len(order), GGUFValueType.INT32)
            for i in idx:
                p = plan.tensors[i]
                w.add_tensor_info(p.name, p.shape, p.type, n_dims=_n_dims(p.shape))
    except BaseException:
        sink.abort()
        raise
    written = [i for idx in groups for i in idx]  # shard by shard: each writer's tensors in declaration order
    run_pass([_out_tensor(order[i]) for i in written], [Job([plan.tensors[i] for i in written], sink, weights)],
             None, nthreads=nthreads, quiet=quiet)


__all__ = ["RequantizeResult", "quantize_file"]
