"""One step from a Hugging Face checkpoint to a quantized GGUF that llama.cpp loads.

llama.cpp needs two steps (``convert_hf_to_gguf.py`` to F16, then ``llama-quantize``); :func:`convert`
does both in one streaming pass: tensors are read memory-mapped one at a time, renamed and reshaped
as convert_hf_to_gguf.py does, quantized with the per-tensor types llama-quantize would choose for
the preset (:mod:`ggquant.plan`), and written to a GGUF file that appears atomically when complete.

Example:
    >>> import ggquant
    >>> plan = ggquant.convert("path/to/Llama-3.2-1B", "llama-q4_k_m.gguf", preset="Q4_K_M")  # doctest: +SKIP
    >>> print(plan.format())                                                                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError, GGQuantError, UnsupportedTypeError
from .hf import archs as _archs
from .hf import naming as _naming
from .hf import tokenizer as _tk
from .hf.loader import TensorSource, dequantize_fp8_blocks, from_state_dict, open_checkpoint, to_compute_dtype
from .plan import ModelInfo, Plan, plan_quantization
from .qtypes import GGMLType, type_info
from .quants import quantize

SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(sorted(_archs.SUPPORTED))

_CHUNK_BYTES = 32 << 20  # float32 bytes converted and quantized at a time within one tensor
_QUANT_CONFIG_TENSORS = (".qweight", ".qzeros", ".g_idx", ".scales", ".weight_scale", ".weight_scale_inv",
                         ".weight_packed", ".input_scale")


@dataclass
class ConversionResult:
    """What :func:`convert` did (or, with ``dry_run``, would do).

    Attributes:
        plan: the per-tensor :class:`~ggquant.plan.Plan` (names, shapes, types, bytes).
        metadata: the GGUF key/value pairs in write order, ``key -> value``.
        header_bytes: size of the GGUF header (key/values and tensor infos, padded).
        file_size: predicted (dry run) or actual size of the output file in bytes.
        path: the output path (None for a dry run).
        arch: the GGUF architecture (``"llama"``, ``"qwen2"``, ...).
        seconds: wall time of the conversion.
    """

    plan: Plan
    metadata: dict[str, Any]
    header_bytes: int
    file_size: int
    path: Path | None
    arch: str
    seconds: float = 0.0
    metadata_types: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def format(self) -> str:
        """The plan as a table with the predicted file size."""
        return self.plan.format(header_bytes=self.header_bytes)


# ---------------------------------------------------------------------------------------------
# GGUF header size (for the dry-run prediction)


def _kv_size(key: str, value: Any, vtype: int, sub: int | None) -> int:
    n = 8 + len(key.encode()) + 4
    return n + _val_size(value, vtype, sub)


def _val_size(value: Any, vtype: int, sub: int | None) -> int:
    if vtype == _tk.STR:
        return 8 + len(value.encode())
    if vtype == _tk.ARR:
        n = 4 + 8
        if sub == _tk.STR:
            return n + sum(8 + len(s.encode()) for s in value)
        return n + len(value) * {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}[sub]
    return {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}[vtype]


def _header_size(entries: list[tuple], plan: Plan, alignment: int = 32) -> int:
    n = 24 + sum(_kv_size(*e) for e in entries)
    for t in plan.tensors:
        n += 8 + len(t.name.encode()) + 4 + 8 * max(len(t.shape), 1) + 4 + 8
    return (n + alignment - 1) // alignment * alignment


# ---------------------------------------------------------------------------------------------
# GGUF writer: ggquant.gguf


class _Writer:
    """ggquant.gguf.GGUFWriter with the value types passed as its GGUFValueType."""

    def __init__(self, path: Path, split_max_tensors: int | None = None, split_max_size: int | None = None):
        from .gguf import GGUFValueType, GGUFWriter

        self._vt = GGUFValueType
        self.w = GGUFWriter(str(path), split_max_tensors=split_max_tensors, split_max_size=split_max_size)

    def add_kv(self, key: str, value: Any, vtype: int, subtype: int | None = None) -> None:
        if subtype is None:
            self.w.add_kv(key, value, self._vt(vtype))
        else:
            self.w.add_kv(key, value, self._vt(vtype), self._vt(subtype))

    def add_tensor_info(self, name: str, shape: tuple[int, ...], type: GGMLType) -> None:
        self.w.add_tensor_info(name, shape=tuple(shape), type=type)

    def write_tensor(self, name: str, data: np.ndarray) -> None:
        self.w.write_tensor(name, data)

    def close(self) -> None:
        self.w.close()

    def abort(self) -> None:
        self.w.abort()


def _open_writer(path: Path, split_max_tensors: int | None = None, split_max_size: int | None = None) -> Any:
    return _Writer(path, split_max_tensors, split_max_size)


# ---------------------------------------------------------------------------------------------
# imatrix


def load_imatrix(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read an importance matrix written by llama-imatrix (GGUF format or the legacy ``.dat`` format)
    into ``{GGUF tensor name: float32 weights}`` (``ne0`` values, ``ne0 * n_expert`` for expert tensors),
    normalized as llama-quantize does (see :func:`ggquant.imatrix.read_imatrix`)."""
    from .imatrix import load_imatrix as read

    return {k: np.asarray(v, np.float32).reshape(-1) for k, v in read(Path(path)).items()}


# ---------------------------------------------------------------------------------------------
# progress


class _Progress:
    """Progress over bytes of source tensors: a tqdm bar, or plain lines with an ETA without tqdm."""

    def __init__(self, total: int, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.done = 0
        self.total = total
        self.t0 = time.perf_counter()
        if quiet:
            return
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, dynamic_ncols=True,
                            desc="converting", file=sys.stderr)
        except ImportError:
            self.bar = None

    def start(self, name: str, what: str) -> None:
        """A tensor starts: ``name`` and what it becomes (a type name)."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(f"{name} -> {what}", refresh=False)
        else:
            el = time.perf_counter() - self.t0
            eta = el / self.done * (self.total - self.done) if self.done else float("nan")
            print(f"[{100 * self.done / max(self.total, 1):5.1f}%] {name} -> {what} (ETA {eta:.0f} s)",
                  file=sys.stderr, flush=True)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------------


def _load_config(config: Any, model_dir: Path | None) -> dict:
    if config is None:
        if model_dir is None:
            raise GGQuantError("a state dict needs config= (a dict, a config.json path or a transformers config)")
        config = model_dir / "config.json"
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if isinstance(config, (str, os.PathLike)):
        p = Path(config)
        if p.is_dir():
            p = p / "config.json"
        try:
            config = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise GGQuantError(f"{p}: cannot read the model config: {e}") from e
    if not isinstance(config, Mapping):
        raise GGQuantError(f"config must be a dict, a path or a transformers config, got {type(config).__name__}")
    return dict(config)


def _check_not_quantized(hparams: dict, src: TensorSource, allow_requantize: bool) -> None:
    qc = hparams.get("quantization_config")
    q_tensors = [n for n in src.names() if n.endswith(_QUANT_CONFIG_TENSORS)]
    int_weights = [n for n in src.names() if n.endswith(".weight") and src.dtype(n) in ("I8", "U8", "I32", "I16")]
    if not qc and not q_tensors and not int_weights:
        return
    what = (f"quantization_config {qc.get('quant_method', '?') if isinstance(qc, Mapping) else qc!r} in config.json"
            if qc else f"quantized tensors such as {(q_tensors or int_weights)[0]!r} ({src.origin((q_tensors or int_weights)[0])})")
    if not allow_requantize:
        raise GGQuantError(f"the checkpoint is already quantized ({what}); requantizing loses quality. "
                           f"Pass allow_requantize=True (CLI: --allow-requantize) to convert the floating-point "
                           f"tensors anyway")
    if isinstance(qc, Mapping) and qc.get("quant_method") == "fp8":
        dequantize_fp8_blocks(src, qc.get("weight_block_size"))
        q_tensors = [n for n in src.names() if n.endswith(_QUANT_CONFIG_TENSORS)]
    if q_tensors or int_weights:
        raise UnsupportedTypeError(f"the checkpoint is already quantized ({what}) in a packed format ggquant "
                                   f"cannot dequantize (GPTQ/AWQ/FP8 with scales); convert the original "
                                   f"floating-point checkpoint instead")


def _size_label(outs: list[Any]) -> str | None:
    total = shared = expert = esum = ntens = 0
    for t in outs:
        size = int(np.prod(t.shape, dtype=np.int64))
        if "_exps." in t.name and len(t.shape) >= 3:
            c = t.shape[-2 if ".bias" in t.name else -3]
            expert += size // c
            esum += c
            ntens += 1
        else:
            shared += size
        total += size
    if total <= 0:
        return None
    ecount = esum // ntens if ntens else 0

    def rounded(n: int) -> str:
        for lim, scale, suf in ((1e12, 1e-12, "T"), (1e9, 1e-9, "B"), (1e6, 1e-6, "M")):
            if n > lim:
                v = n * scale
                break
        else:
            v, suf = n * 1e-3, "K"
        fix = max(2 - len(str(round(v)).lstrip("0")), 0)
        return f"{v:.{fix}f}{suf}"

    return f"{ecount}x{rounded(shared + expert)}" if ecount > 0 else rounded(total)


def convert(
    model: str | os.PathLike[str] | Mapping[str, Any],
    outfile: str | os.PathLike[str] | None,
    preset: str | GGMLType = "Q4_K_M",
    *,
    config: Any = None,
    tokenizer_dir: str | os.PathLike[str] | None = None,
    imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    tensor_types: Iterable[str] | Mapping[str, Any] | None = None,
    token_embedding_type: GGMLType | str | None = None,
    output_tensor_type: GGMLType | str | None = None,
    pure: bool = False,
    dry_run: bool = False,
    quiet: bool = False,
    allow_requantize: bool = False,
    name: str | None = None,
    nthreads: int | None = None,
    split_max_tensors: int | None = None,
    split_max_size: int | None = None,
) -> ConversionResult:
    """Convert a Hugging Face checkpoint to a (quantized) GGUF file in one streaming pass.

    Args:
        model: a model directory (``config.json`` plus ``model.safetensors``, sharded
            ``model-*.safetensors`` with ``model.safetensors.index.json``, or ``pytorch_model*.bin``),
            or a state dict (name -> torch tensor or NumPy array, with ``config=``).
        outfile: the GGUF file to write (ignored for ``dry_run``). It appears only when complete.
        preset: a llama.cpp preset (``"Q4_K_M"``, ``"Q8_0"``, ``"F16"``, ... see :data:`ggquant.plan.PRESETS`)
            or a ggml type name (``"q4_K"``) for that type in every quantizable tensor.
        config: the model config for a state dict (dict, path to config.json, or a transformers config);
            for a directory it overrides ``config.json``.
        tokenizer_dir: where tokenizer.json / tokenizer.model live (default: the model directory).
        imatrix: importance matrix, a llama-imatrix file or ``{gguf tensor name: weights}``.
        tensor_types: per-tensor overrides ``["REGEX=TYPE", ...]`` (llama-quantize ``--tensor-type``).
        token_embedding_type / output_tensor_type / pure: as llama-quantize's options.
        dry_run: only plan: no tensor data is read and nothing is written (what would stop the real
            conversion, e.g. a type this build cannot quantize, is listed in ``plan.warnings``).
        quiet: no progress bar.
        allow_requantize: convert a checkpoint that declares a ``quantization_config`` anyway.
        name: ``general.name`` (default: from ``_name_or_path`` in config.json or the directory name,
            with gguf-py's heuristics for basename, finetune, version and size label).
        nthreads: quantization threads (default: :func:`ggquant.get_num_threads`).
        split_max_tensors / split_max_size: write ``{stem}-00001-of-0000N.gguf`` shards of at most this
            many tensors / bytes of tensor data (as llama-gguf-split; llama.cpp loads the first shard).

    Returns:
        A :class:`ConversionResult` with the plan, metadata and (predicted) file size.

    Raises:
        GGQuantError: unsupported architecture (the message lists the supported ones), an already
            quantized checkpoint, unreadable files (the message names file and tensor), a type this
            build cannot quantize, or a preset that needs an importance matrix without one.

    Example:
        >>> import ggquant
        >>> r = ggquant.convert("path/to/model", "model-q4_k_m.gguf", "Q4_K_M")  # doctest: +SKIP
        >>> r.plan.tensor("output.weight").type                                    # doctest: +SKIP
        <GGMLType.Q6_K: 14>
    """
    t0 = time.perf_counter()
    model_dir: Path | None = None
    if isinstance(model, Mapping):
        src = from_state_dict(model)
    else:
        model_dir = Path(model)
        src = open_checkpoint(model_dir)
    hparams = _load_config(config, model_dir)
    tok_dir = Path(tokenizer_dir) if tokenizer_dir is not None else model_dir
    arch = _archs.arch_for(hparams)
    _check_not_quantized(hparams, src, allow_requantize)

    outs = arch.tensors(src)
    minfo = ModelInfo(arch=arch.gguf_arch, n_layer=arch.n_layer, n_head=arch.n_head, n_head_kv=arch.n_head_kv,
                      n_expert=arch.n_expert)
    imx: dict[str, np.ndarray] | None = None
    if imatrix is not None:
        imx = load_imatrix(imatrix) if isinstance(imatrix, (str, os.PathLike)) else {
            k: np.asarray(v, np.float32).reshape(-1) for k, v in imatrix.items()}
    plan = plan_quantization([(t.name, t.shape) for t in outs], preset, minfo, has_imatrix=imx is not None,
                             tensor_types=tensor_types, token_embedding_type=token_embedding_type,
                             output_tensor_type=output_tensor_type, pure=pure)
    problems: list[GGQuantError] = []
    missing = sorted({type_info(t.type).name for t in plan.tensors if not type_info(t.type).can_quantize})
    if missing:
        problems.append(UnsupportedTypeError(f"preset {plan.preset} needs type(s) {', '.join(missing)}, which this "
                                             f"build of ggquant cannot quantize yet"))
    need = [t.name for t in plan.tensors if t.requires_imatrix] if imx is None else []
    if need:
        problems.append(GGQuantError(f"preset {plan.preset} quantizes {need[0]} (and {len(need) - 1} more) to a "
                                     f"type that requires an importance matrix; pass imatrix="))
    if problems and not dry_run:
        raise problems[0]
    plan.warnings.extend(str(p) for p in problems)  # a dry run still shows the plan

    # metadata, in convert_hf_to_gguf.py's order
    entries: list[tuple] = [("general.architecture", arch.gguf_arch, _tk.STR, None),
                            ("general.type", "model", _tk.STR, None)]
    total_params = sum(int(np.prod(t.shape, dtype=np.int64)) for t in outs)
    entries += _naming.general_entries(hparams, model_dir, total_params, _size_label(outs), name)
    entries += arch.hparam_entries(plan.file_type)
    entries.append(("general.quantization_version", 2, _tk.U32, None))
    vocab = arch.vocab_entries(tok_dir)
    if not vocab:
        where = f"in {tok_dir}" if tok_dir is not None else "(no tokenizer_dir given)"
        plan.warnings.append(f"no tokenizer.json or tokenizer.model {where}: the GGUF gets no vocabulary, "
                             f"which llama.cpp needs (pass tokenizer_dir=)")
    entries += vocab
    ordered: dict[str, tuple] = {}
    for e in entries:  # a key set twice keeps its first position and its last value (as gguf-py)
        ordered[e[0]] = e
    entries = list(ordered.values())
    header = _header_size(entries, plan)
    size = header + plan.tensor_data_size()
    result = ConversionResult(plan, {e[0]: e[1] for e in entries}, header, size, None, arch.gguf_arch,
                              metadata_types={e[0]: (e[2], e[3]) for e in entries})
    if dry_run:
        result.seconds = time.perf_counter() - t0
        return result
    if outfile is None:
        raise GGQuantError("outfile is required unless dry_run=True")
    out_path = Path(outfile)

    w = _open_writer(out_path, split_max_tensors, split_max_size)
    prog = _Progress(sum(t.nbytes for t in plan.tensors), quiet)
    try:
        for key, value, vt, st in entries:
            w.add_kv(key, value, vt, st)
        for t in plan.tensors:
            w.add_tensor_info(t.name, t.shape, t.type)
        for ot, pt in zip(outs, plan.tensors):
            prog.start(pt.name, pt.type.name)
            data = _produce(ot, pt, imx, src, nthreads)
            w.write_tensor(pt.name, data)
            prog.update(pt.nbytes)
            del data
    except BaseException:
        prog.close()
        w.abort()
        raise
    prog.close()
    w.close()
    src.close()
    shards = sorted(out_path.parent.glob(f"{out_path.stem}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].gguf"))
    if out_path.exists():
        result.path, result.file_size = out_path, out_path.stat().st_size
    elif shards:
        result.path, result.file_size = shards[0], sum(p.stat().st_size for p in shards)
    else:
        raise GGQuantError(f"{out_path}: the GGUF writer produced no file")
    result.seconds = time.perf_counter() - t0
    return result


def _produce(ot: Any, pt: Any, imx: dict[str, np.ndarray] | None, src: TensorSource, nthreads: int | None) -> np.ndarray:
    """Quantize one output tensor part by part (experts one at a time, big matrices in row chunks) into
    one preallocated buffer of exactly the tensor's bytes."""
    t = pt.type
    ne0 = pt.shape[-1]
    weights = None
    if imx is not None and t not in (GGMLType.F32, GGMLType.F16, GGMLType.BF16):
        weights = imx.get(pt.name)
        n_exp = pt.shape[0] if len(pt.shape) == 3 else 1
        if weights is not None and weights.size != ne0 * n_exp:
            if pt.name not in ("token_embd.weight", "per_layer_token_embd.weight"):
                raise GGQuantError(f"imatrix for {pt.name} has {weights.size} values, expected {ne0 * n_exp}")
            weights = None
    out = np.empty(pt.nbytes, np.uint8)
    pos = 0
    n_exp = pt.shape[0] if len(pt.shape) == 3 else 1
    for k, part in enumerate(ot.parts):
        try:
            arr, dtype = part()
        except GGQuantError:
            raise
        except Exception as e:
            raise FormatError(f"{ot.origin(src)}: cannot read {pt.name}: {e}") from e
        if len(ot.parts) == 1 and n_exp > 1:  # a 3-D tensor given whole: one expert (and imatrix slice) at a time
            subs = [(arr[i], None if weights is None else weights[i * ne0:(i + 1) * ne0]) for i in range(n_exp)]
        else:
            subs = [(arr, None if weights is None else
                     (weights[k * ne0:(k + 1) * ne0] if len(ot.parts) > 1 else weights))]
        for a, w in subs:
            try:
                pos = _quantize_rows(a, dtype, t, w, pt.name, nthreads, out, pos)
            except GGQuantError as e:  # say which file and source tensor, keep the error class
                raise type(e)(f"{ot.origin(src)} -> {pt.name} ({type_info(t).name}): {e}") from None
        del arr, subs
    if pos != pt.nbytes:
        raise GGQuantError(f"{ot.origin(src)}: produced {pos} bytes for {pt.name}, expected {pt.nbytes}")
    return out


def _drop_pages(a: np.ndarray) -> None:
    # release the file-backed pages already read (read-only mapping: they are simply re-read if needed)
    b: Any = a
    while b is not None:
        mm = getattr(b, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise") and hasattr(__import__("mmap"), "MADV_DONTNEED"):
            try:
                mm.madvise(__import__("mmap").MADV_DONTNEED)
            except (OSError, ValueError):
                pass
            return
        b = getattr(b, "base", None)


def _quantize_rows(arr: np.ndarray, dtype: str, t: GGMLType, weights: np.ndarray | None, name: str,
                   nthreads: int | None, out: np.ndarray, pos: int) -> int:
    a = arr.reshape(-1, arr.shape[-1]) if arr.ndim != 1 else arr.reshape(1, -1)
    rows_per_chunk = max(1, _CHUNK_BYTES // (4 * a.shape[1]))
    for r in range(0, a.shape[0], rows_per_chunk):
        chunk = to_compute_dtype(np.asarray(a[r:r + rows_per_chunk]), dtype)
        if chunk.dtype not in (np.float32, np.float16):
            chunk = chunk.astype(np.float32)
        q = quantize(chunk, t, imatrix=weights, name=name, nthreads=nthreads).reshape(-1)
        if pos + q.size > out.size:
            raise GGQuantError(f"{name}: more bytes than planned ({pos + q.size} > {out.size})")
        out[pos:pos + q.size] = q
        pos += q.size
        del chunk, q
        _drop_pages(arr)
    return pos


__all__ = ["SUPPORTED_ARCHITECTURES", "ConversionResult", "convert"]
