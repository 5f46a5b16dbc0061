"""Read llama.cpp importance-matrix ("imatrix") files.

Both formats ``llama-imatrix`` writes are read:

* the GGUF format (the default since 2025): per weight tensor ``<name>.in_sum2`` (F32, shape
  ``(n_experts, n_cols)`` in NumPy order) with the summed squared activations and
  ``<name>.counts`` (F32, one count per expert);
* the legacy ``.dat`` format: ``int32 n_entries``, then per entry ``int32 len``, the name,
  ``int32 ncall``, ``int32 nval`` and ``nval`` float32 values, then optionally ``int32`` chunk
  count, ``int32 len`` and the dataset file name.

The weights are computed exactly as ``llama-quantize`` computes them (float32 arithmetic):
``in_sum2 / count`` per expert (``1`` where an expert's count is zero) for GGUF files, and
``value / ncall`` (the raw value when ``ncall`` is 0) for legacy files. The result is what
``ggquant.quantize(..., imatrix=w)`` takes, and what llama.cpp passes to ``ggml_quantize_chunk``.
"""

from __future__ import annotations

import difflib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._checks import array_arg, shape_arg
from .errors import FormatError, GGQuantError, GGUFError, NonFiniteError, ShapeError
from .fileio import PathArg, fs_path, read_regular_file
from .gguf import GGUFReader  # the strict reader: every count, offset and size is checked there
from .qtypes import GGMLType

_SUM_SUFFIX = ".in_sum2"
_COUNT_SUFFIX = ".counts"
_MAX_NAME = 1 << 16  # longer tensor names are malformed files, not names


@dataclass
class Imatrix:
    """The contents of an imatrix file.

    Attributes:
        weights: tensor name -> float32 weights: shape ``(n_cols,)``, or ``(n_experts, n_cols)``
            for the stacked expert tensors of a GGUF imatrix (legacy files store experts flat:
            ``(n_experts * n_cols,)``; :func:`imatrix_for` reshapes either).
        datasets: the names of the calibration text files.
        chunk_count: chunks of text the statistics were collected over (0 if not recorded).
        chunk_size: tokens per chunk (GGUF files only; 0 otherwise).
        format: ``"gguf"`` or ``"legacy"``.
    """

    weights: dict[str, np.ndarray] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = 0
    format: str = "gguf"


def read_imatrix(path: PathArg) -> Imatrix:
    """Read an imatrix file (GGUF or legacy ``.dat``; told apart by the GGUF magic).

    Args:
        path: the file written by ``llama-imatrix``.

    Returns:
        An :class:`Imatrix` with the per-tensor weights and the file's metadata.

    Raises:
        GGQuantIOError: the file cannot be opened or read.
        FormatError: a malformed legacy file (truncated, impossible sizes, duplicate names).
        GGUFError: a malformed GGUF file, or one whose tensors are not imatrix data (an unknown
            tensor name, a sum without its count, sizes that do not divide).
        NonFiniteError: a weight is NaN or Inf.

    Example:
        >>> import ggquant, os, struct, tempfile, numpy as np
        >>> p = os.path.join(tempfile.mkdtemp(), "x.dat")
        >>> with open(p, "wb") as f:  # one entry 'w' of 4 values, collected over 2 calls
        ...     _ = f.write(struct.pack("<ii1sii4f", 1, 1, b"w", 2, 4, 2.0, 4.0, 6.0, 8.0))
        >>> ggquant.read_imatrix(p).weights["w"].tolist()
        [1.0, 2.0, 3.0, 4.0]
    """
    p = fs_path(path, "imatrix file")
    data = read_regular_file(p, "imatrix file")
    if data[:4] == b"GGUF":
        result = _read_gguf(p)
    else:
        result = _read_legacy(data, p)
    for name, w in result.weights.items():
        bad = ~np.isfinite(w)
        if bad.any():
            at = int(np.flatnonzero(bad.ravel())[0])
            raise NonFiniteError(f"imatrix {p!r}: tensor {name!r} has a NaN or Inf weight at index {at}")
        if (w < 0).any():
            raise FormatError(f"imatrix {p!r}: tensor {name!r} has a negative weight")
    return result


def load_imatrix(path: PathArg) -> dict[str, np.ndarray]:
    """Read an imatrix file into a mapping tensor name -> float32 per-column weights.

    Args:
        path: a GGUF or legacy ``.dat`` imatrix file written by ``llama-imatrix``.

    Returns:
        ``{tensor name: weights}``; weights have shape ``(n_cols,)`` (``(n_experts, n_cols)`` for
        stacked experts in GGUF files). See :func:`read_imatrix` for the errors and
        :func:`imatrix_for` to pick (and check) the weights of one tensor.

    Example:
        >>> import ggquant, os, struct, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "x.dat")
        >>> with open(p, "wb") as f:
        ...     _ = f.write(struct.pack("<ii1sii2f", 1, 1, b"w", 4, 2, 2.0, 6.0))
        >>> ggquant.load_imatrix(p)["w"].tolist()
        [0.5, 1.5]
    """
    return read_imatrix(path).weights


def imatrix_for(imatrix: Mapping[str, np.ndarray], name: str, shape: Sequence[int]) -> np.ndarray:
    """The importance weights of one tensor, checked against the tensor's shape.

    Args:
        imatrix: the mapping :func:`load_imatrix` returns.
        name: the tensor name in the GGUF file (``"blk.0.attn_q.weight"``).
        shape: the tensor's NumPy shape: ``(rows, n_cols)`` (or ``(n_cols,)``), or
            ``(n_experts, rows, n_cols)`` for stacked experts.

    Returns:
        float32 weights of shape ``(n_cols,)``, or ``(n_experts, n_cols)`` for a 3-D tensor
        (``w[e]`` is the imatrix of expert ``e``).

    Raises:
        GGQuantError: ``name`` has no entry (the message lists similar names).
        ShapeError: the entry's size does not match the tensor (llama-quantize refuses these too).

    Example:
        >>> import numpy as np, ggquant
        >>> im = {"blk.0.ffn_down_exps.weight": np.ones((4, 8), np.float32)}
        >>> ggquant.imatrix_for(im, "blk.0.ffn_down_exps.weight", (4, 16, 8)).shape
        (4, 8)
    """
    if name not in imatrix:
        near = difflib.get_close_matches(name, list(imatrix), n=3)
        hint = f"; similar names: {near}" if near else ""
        raise GGQuantError(f"imatrix has no entry for tensor {name!r} ({len(imatrix)} entries){hint}")
    shape = shape_arg(shape)
    if not shape or len(shape) > 3:
        raise ShapeError(f"tensor {name!r}: imatrix weights need a 1-, 2- or 3-D tensor shape, got {shape}")
    n_cols = shape[-1]
    n_experts = shape[0] if len(shape) == 3 else 1
    w = array_arg(imatrix[name], f"the imatrix entry of {name!r}", np.float32)
    if w.size != n_cols * n_experts:
        want = f"{n_experts} x {n_cols}" if len(shape) == 3 else f"{n_cols}"
        raise ShapeError(f"tensor {name!r} of shape {shape}: imatrix has {w.size} weights, expected {want}")
    return w.reshape(n_experts, n_cols) if len(shape) == 3 else w.reshape(n_cols)


# ---- legacy .dat


class _Cursor:
    def __init__(self, data: bytes, path: str, err: type[GGQuantError]):
        self.data, self.pos, self.path, self.err = data, 0, path, err

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.err(f"imatrix {self.path!r}: truncated at byte {self.pos} while reading {what} ({n} bytes)")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def left(self) -> int:
        return len(self.data) - self.pos


def _read_legacy(data: bytes, path: str) -> Imatrix:
    cur = _Cursor(data, path, FormatError)
    (n_entries,) = cur.unpack("i", "the entry count")
    if n_entries < 1:
        raise FormatError(f"imatrix {path!r}: not a GGUF file, and as a legacy .dat file it holds {n_entries} entries")
    out = Imatrix(format="legacy")
    for i in range(n_entries):
        (n,) = cur.unpack("i", f"the name length of entry {i}")
        if not 0 < n <= _MAX_NAME:
            raise FormatError(f"imatrix {path!r}: entry {i} has a name of {n} bytes")
        raw = cur.take(n, f"the name of entry {i}")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"imatrix {path!r}: the name of entry {i} is not UTF-8: {raw[:40]!r}") from None
        ncall, nval = cur.unpack("ii", f"the sizes of entry {name!r}")
        if nval < 1 or nval * 4 > cur.left():
            raise FormatError(f"imatrix {path!r}: tensor {name!r} claims {nval} values, {cur.left()} bytes are left")
        if name in out.weights:
            raise FormatError(f"imatrix {path!r}: tensor {name!r} appears twice")
        values = np.frombuffer(cur.take(4 * nval, f"the values of {name!r}"), dtype="<f4").astype(np.float32)
        # llama-quantize: the file stores mean * ncall; divide by ncall in float
        out.weights[name] = values / np.float32(ncall) if ncall > 0 else values.copy()
    if cur.left():  # optional trailer: chunk count, then the dataset name
        (out.chunk_count,) = cur.unpack("i", "the chunk count")
        if cur.left():
            (n,) = cur.unpack("i", "the dataset name length")
            if n < 0 or n > cur.left():
                raise FormatError(f"imatrix {path!r}: dataset name of {n} bytes, {cur.left()} bytes are left")
            if n:
                out.datasets.append(cur.take(n, "the dataset name").decode("utf-8", errors="replace"))
        if cur.left():
            raise FormatError(f"imatrix {path!r}: {cur.left()} unexpected bytes after the dataset name")
    return out


# ---- GGUF

def _read_gguf(path: str) -> Imatrix:
    reader = GGUFReader(path)
    kv = reader.metadata
    infos = {t.name: t for t in reader.tensors}

    def tensor(name: str) -> np.ndarray:
        t = infos[name]
        if t.type != GGMLType.F32:
            raise GGUFError(f"imatrix {path!r}: tensor {name!r} has ggml type {t.type.name}; imatrix data must be F32")
        return np.array(t.data, dtype=np.float32)

    pairs: dict[str, list[str | None]] = {}
    for name in infos:
        for i, suffix in enumerate((_SUM_SUFFIX, _COUNT_SUFFIX)):
            if name.endswith(suffix) and len(name) > len(suffix):
                pairs.setdefault(name[: -len(suffix)], [None, None])[i] = name
                break
        else:
            raise GGUFError(
                f"imatrix {path!r}: tensor {name!r} is neither '<name>{_SUM_SUFFIX}' nor '<name>{_COUNT_SUFFIX}'"
                " (not an imatrix file?)"
            )
    out = Imatrix(format="gguf")
    for base, (sum_name, count_name) in pairs.items():
        if sum_name is None or count_name is None:
            have = sum_name or count_name
            raise GGUFError(
                f"imatrix {path!r}: tensor {base!r} has {have!r} but not its {'counts' if sum_name else 'in_sum2'}"
            )
        sums = tensor(sum_name).reshape(-1)
        counts = tensor(count_name).reshape(-1)
        if counts.size == 0 or sums.size == 0 or sums.size % counts.size:
            raise GGUFError(f"imatrix {path!r}: tensor {base!r} has {sums.size} sums for {counts.size} counts")
        n_cols = sums.size // counts.size
        # llama-quantize: counts are rounded to integers (lround), then used as float divisors
        n = np.floor(np.abs(counts.astype(np.float64)) + 0.5) * np.sign(counts)
        n = n.astype(np.float32)
        rows = sums.reshape(counts.size, n_cols)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where((n > 0)[:, None], rows / np.where(n > 0, n, 1)[:, None], np.float32(1)).astype(np.float32)
        out.weights[base] = w.reshape(n_cols) if counts.size == 1 else w
    datasets = kv.get("imatrix.datasets", [])
    reader.close()
    out.datasets = [str(d) for d in datasets] if isinstance(datasets, list) else []
    out.chunk_count = _count(kv, "imatrix.chunk_count", path)
    out.chunk_size = _count(kv, "imatrix.chunk_size", path)
    return out


def _count(kv: Mapping[str, Any], key: str, path: str) -> int:
    """A non-negative integer metadata value (0 when absent); llama-imatrix writes them as u32."""
    v = kv.get(key, 0)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise GGUFError(f"imatrix {path!r}: {key} must be a non-negative integer, got {type(v).__name__} {v!r}"[:300])
    return v


__all__ = ["Imatrix", "imatrix_for", "load_imatrix", "read_imatrix"]
