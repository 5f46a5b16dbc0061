"""The pipeline both converter ends share: model in (checkpoint + config, one "already quantized"
policy), tensors quantized chunk by chunk, progress, atomic output. See :mod:`ggquant.convert`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .. import _core
from ..errors import FormatError, GGQuantError, GGQuantIOError, UnsupportedTypeError
from ..fileio import fs_path, read_text_file, remove_stale_temporaries, unlink_committed
from ..gguf import GGUFWriter
from ..hf.archs import kept_quant_method
from ..hub import is_hub_id, resolve_model
from ..hf.checkpoint import Checkpoint, dequantize_fp8_blocks, from_state_dict, open_checkpoint
from ..plan import PlannedTensor
from ..qtypes import GGMLType

_PACKED_TENSORS = (".qweight", ".qzeros", ".g_idx", ".scales", ".weight_scale", ".weight_scale_inv",
                   ".weight_packed", ".input_scale")
_INT_DTYPES = ("I8", "U8", "I32", "I16")


# ---------------------------------------------------------------------------------------------
# model in


def load_config(config: Any, model_dir: Path | None) -> dict[str, Any]:
    """The model config as a dict: ``config`` (a dict, a config.json path or directory, or a
    transformers config) or, when None, ``model_dir/config.json``.

    Raises:
        FormatError: no config, or one that cannot be read (the message names the file).
    """
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
            config = json.loads(read_text_file(p, "model config"))
        except (OSError, ValueError, RecursionError) as e:
            raise FormatError(f"{p}: cannot read the model config: {e}") from e
    if not isinstance(config, Mapping):
        raise GGQuantError(f"config must be a dict, a path or a transformers config, got {type(config).__name__}")
    return dict(config)


def check_not_quantized(hparams: Mapping[str, Any], ck: Checkpoint, allow_requantize: bool) -> None:
    """The one "already quantized" policy of both ends.

    A checkpoint is quantized when config.json declares a ``quantization_config`` (Hugging Face) or a
    ``quantization`` (MLX), or holds packed tensors (GPTQ/AWQ/compressed-tensors names) or integer
    weights. Without ``allow_requantize`` that is an error; with it, block-scaled FP8 weights are
    dequantized (as convert_hf_to_gguf.py does) and packed formats are still refused.

    Raises:
        FormatError: quantized and not ``allow_requantize``.
        UnsupportedTypeError: packed tensors ggquant cannot dequantize.
    """
    qc = hparams.get("quantization_config") or hparams.get("quantization")
    names = ck.names()
    packed = [n for n in names if n.endswith(_PACKED_TENSORS)]
    int_weights = [n for n in names if n.endswith(".weight") and ck.dtype(n) in _INT_DTYPES]
    if not qc and not packed and not int_weights:
        return
    kept = kept_quant_method(dict(hparams))
    if kept is not None and isinstance(qc, Mapping) and qc.get("quant_method") == kept:
        return  # copied as stored (gpt-oss's MXFP4 experts); a preset that requantizes them needs allow_requantize
    if qc:
        method = qc.get("quant_method", qc.get("mode", "?")) if isinstance(qc, Mapping) else qc
        what = f"quantization {method!r} in config.json"
    else:
        first = (packed or int_weights)[0]
        what = f"quantized tensors such as {first!r} ({ck.origin(first)})"
    if not allow_requantize:
        raise FormatError(f"the checkpoint is already quantized ({what}); requantizing loses quality. "
                          f"Pass allow_requantize=True (CLI: --allow-requantize) to convert the floating-point "
                          f"tensors anyway")
    if isinstance(qc, Mapping) and qc.get("quant_method") == "fp8":
        dequantize_fp8_blocks(ck, qc.get("weight_block_size"))
        packed = [n for n in ck.names() if n.endswith(_PACKED_TENSORS)]
    if packed or int_weights:
        raise UnsupportedTypeError(f"the checkpoint is already quantized ({what}) in a packed format ggquant "
                                   f"cannot dequantize (GPTQ/AWQ/FP8 with scales); convert the original "
                                   f"floating-point checkpoint instead")


@dataclass
class HFModel:
    """A Hugging Face model opened for conversion: its tensors, config and directory.

    Attributes:
        checkpoint: the tensors (:class:`ggquant.hf.checkpoint.Checkpoint`).
        hparams: config.json (or the ``config=`` given).
        model_dir: the directory, or None for a state dict.
    """

    checkpoint: Checkpoint
    hparams: dict[str, Any]
    model_dir: Path | None

    def close(self) -> None:
        self.checkpoint.close()


def open_model(model: str | os.PathLike[str] | Mapping[str, Any], config: Any = None, *,
               allow_requantize: bool = False) -> HFModel:
    """Open a model directory or a state dict, read its config and apply :func:`check_not_quantized`.

    Args:
        model: a Hugging Face model directory, a Hub id (``"Qwen/Qwen3-0.6B"``, fetched with
            :func:`ggquant.hub.resolve_model`) or a state dict (name -> torch tensor or NumPy array).
        config: overrides config.json (required for a state dict); see :func:`load_config`.
        allow_requantize: see :func:`check_not_quantized`.

    Returns:
        An :class:`HFModel` (close it when done).

    Example:
        >>> m = open_model("path/to/model")  # doctest: +SKIP
    """
    if isinstance(model, Mapping):
        model_dir, hparams = None, load_config(config, None)
        ck = from_state_dict(model)
    else:
        model_dir = resolve_model(fs_path(model, "model directory"))  # a Hub id is downloaded (only the files a conversion reads)
        hparams = load_config(config, model_dir)  # before the weights: a missing config is the clearer error
        if is_hub_id(model):  # general.name from the id, not from the snapshot's commit hash
            hparams.setdefault("_name_or_path", os.fspath(model))
        ck = open_checkpoint(model_dir)
    try:
        check_not_quantized(hparams, ck, allow_requantize)
    except BaseException:
        ck.close()
        raise
    return HFModel(ck, hparams, model_dir)


# ---------------------------------------------------------------------------------------------
# atomic output


@contextmanager
def atomic_directory(dst: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``dst`` to fill; it becomes ``dst`` on success and is removed on error.

    Temporaries of earlier runs that were killed (their process is gone) are removed first; an
    operating-system failure anywhere in the block (a read-only folder, a full disk) becomes a
    :class:`GGQuantIOError`.

    Raises:
        GGQuantIOError: ``dst`` exists and is not an empty directory (checked before anything is
            written), or the OS refused to create or fill the temporary.
    """
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise GGQuantIOError(f"{dst} exists and is not an empty directory")
    remove_stale_temporaries(dst)
    tmp = dst.parent / f".{dst.name}.partial-{os.getpid()}"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    except OSError as e:
        raise GGQuantIOError(f"cannot create the output folder {tmp}: {e.strerror or e}") from None
    try:
        yield tmp
        if dst.exists():
            dst.rmdir()
        os.replace(tmp, dst)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise GGQuantIOError(f"cannot write the output folder {dst}: {e.strerror or e}") from e
        raise


def input_files(model_dir: Path | None, *extra: str | os.PathLike[str] | None) -> list[str]:
    """The files a conversion reads: every regular file of the model directory, plus ``extra`` ones
    (an imatrix, a tokenizer directory's files), for :func:`ggquant.fileio.check_not_an_input`."""
    found: list[str] = []
    for d in (model_dir, *extra):
        if d is None or isinstance(d, Mapping):
            continue
        p = Path(fs_path(d, "input"))
        if p.is_dir():
            found += [str(f) for f in p.iterdir() if f.is_file()]
        elif p.exists():
            found.append(str(p))
    return found


# ---------------------------------------------------------------------------------------------
# the tensor loop (GGUF types)


class TensorSink(Protocol):
    """Where a pass writes the tensors of one output (a :class:`ggquant.gguf.GGUFWriter` is one)."""

    def write_tensor(self, name: str, data: np.ndarray) -> None: ...

    def tensor_buffer(self, name: str) -> np.ndarray | None:
        """The tensor's place in the output, to be filled and then passed to ``write_tensor``; None
        where the sink has none (the pass then fills a buffer of its own)."""

    def close(self) -> None: ...

    def abort(self) -> None: ...


class ShardedSink:
    """One output made of several GGUF files, each holding the tensors given to it (llama-quantize's
    ``--keep-split``): every tensor goes to its shard's writer, and the files appear together or not at all.

    Args:
        writers: one per shard, their tensors declared.
        shard_of: tensor name -> index in ``writers``.
    """

    def __init__(self, writers: Sequence[GGUFWriter], shard_of: Mapping[str, int]) -> None:
        self.writers = list(writers)
        self.shard_of = dict(shard_of)

    def write_tensor(self, name: str, data: np.ndarray) -> None:
        self.writers[self.shard_of[name]].write_tensor(name, data)

    def tensor_buffer(self, name: str) -> np.ndarray | None:
        return self.writers[self.shard_of[name]].tensor_buffer(name)

    def close(self) -> None:
        committed: list[str] = []
        try:
            for w in self.writers:
                w.close()
                committed.append(w.path)
        except BaseException:
            unlink_committed(committed)
            self.abort()
            raise

    def abort(self) -> None:
        for w in self.writers:
            w.abort()


def spare_core(nthreads: int | None) -> bool:
    """Whether the kernels leave a core free (fewer threads than the cores this process may use)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return (nthreads or _core.get_num_threads()) < cores


def prefault_ahead(writer: Executor, places: Sequence[np.ndarray | None]) -> None:
    """Have the writer thread fault in these output places (the next tensor's, in a mapped output file)
    while the kernels work on this tensor, so that the kernels find the pages there. Call it only with a
    :func:`spare_core`: without one the writer takes turns with a kernel thread and stalls the rest."""
    for b in places:
        if b is not None and b.size:
            writer.submit(_core.prefault_for_write, b)


def imatrix_weights(pt: PlannedTensor, imatrix: Mapping[str, np.ndarray] | None) -> np.ndarray | None:
    """The importance weights of one planned tensor (``ne0`` values, ``ne0 * n_expert`` for experts), or None.

    Raises:
        GGQuantError: the imatrix entry has the wrong size (token embeddings are let through without one,
            as llama-quantize does).
    """
    if imatrix is None or pt.type in (GGMLType.F32, GGMLType.F16, GGMLType.BF16):
        return None
    weights = imatrix.get(pt.name)
    ne0 = pt.shape[-1]
    n_exp = pt.shape[0] if len(pt.shape) == 3 else 1
    if weights is not None and weights.size != ne0 * n_exp:
        if pt.name not in ("token_embd.weight", "per_layer_token_embd.weight"):
            raise GGQuantError(f"imatrix for {pt.name} has {weights.size} values, expected {ne0 * n_exp}")
        return None
    return weights


@dataclass
class Job:
    """One output of a pass: the planned tensors (in the order of the pass's tensors), where they go,
    and the importance matrix (GGUF name -> weights) if any."""

    tensors: Sequence[PlannedTensor]
    sink: TensorSink
    imatrix: Mapping[str, np.ndarray] | None = None


__all__ = ["HFModel", "Job", "ShardedSink", "TensorSink", "atomic_directory", "check_not_quantized",
           "imatrix_weights", "input_files", "load_config", "open_model", "prefault_ahead", "spare_core"]
