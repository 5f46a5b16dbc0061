"""Look inside a model file: metadata, a tensor table and totals, for GGUF and safetensors alike.

:func:`inspect_file` opens a GGUF file (a split set given any shard), one ``.safetensors`` file, a
sharded safetensors checkpoint directory or an MLX model directory, reads only the headers (the
files are memory-mapped; no tensor data is touched) and returns an :class:`Inspection`: the
metadata in file order, one :class:`TensorEntry` per tensor (name, type, shape, bytes, absolute
offset in its file) and the totals (parameters, bytes, bits per weight). ``ggquant inspect FILE``
prints it as text, or as JSON with ``--json``; long metadata arrays (vocabularies, merges) are
abbreviated in both.

Example:
    >>> import numpy as np, os, tempfile, ggquant
    >>> from ggquant.inspect_file import inspect_file
    >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
    >>> ggquant.save_file({"w": np.zeros((4, 8), np.float16)}, p)
    >>> info = inspect_file(p)
    >>> info.format_name, info.n_params, info.tensors[0].offset, info.bits_per_weight
    ('safetensors', 32, 72, 16.0)
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError, GGQuantIOError
from .gguf import GGUFReader, GGUFSplitReader, GGUFValueType, read_gguf_split
from .mlx_recipes import layer_quant
from .safetensors import INDEX_NAME, SafetensorsFile, safe_open

#: Arrays longer than this are shown as their length, element type and first few values.
MAX_ARRAY_ITEMS = 8


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of an inspected file.

    Attributes:
        name: the tensor name.
        type: the ggml type name (GGUF: ``"Q4_K"``) or safetensors dtype (``"BF16"``).
        shape: NumPy-order shape (GGUF stores it reversed; :attr:`ne` gives that order).
        nbytes: bytes of data.
        offset: absolute offset of the data in :attr:`file`.
        file: the file holding it.
        n_params: the values it holds (for an MLX packed weight: the unpacked count).
        quant: for an MLX quantized weight, e.g. ``"mlx 4-bit, group 64"``; else empty.
    """

    name: str
    type: str
    shape: tuple[int, ...]
    nbytes: int
    offset: int
    file: str
    n_params: int
    quant: str = ""

    @property
    def ne(self) -> tuple[int, ...]:
        """The shape in ggml order (row length first), as llama.cpp prints it."""
        return tuple(reversed(self.shape))


@dataclass
class Inspection:
    """What :func:`inspect_file` found.

    Attributes:
        path: the path given.
        format_name: ``"gguf"``, ``"safetensors"`` or ``"mlx"``.
        files: every file read (the shards of a split set or checkpoint).
        metadata: key -> value in file order (GGUF key/values; a safetensors ``__metadata__`` map;
            for a directory also ``config.json``'s top-level entries under ``config.*``).
        metadata_types: GGUF key -> on-disk type name (``"UINT32"``, ``"ARRAY[STRING]"``).
        tensors: one :class:`TensorEntry` per tensor, in file order (shard by shard).
        version: the GGUF version (0 for safetensors).
    """

    path: str
    format_name: str
    files: list[str]
    metadata: dict[str, Any]
    metadata_types: dict[str, str]
    tensors: list[TensorEntry]
    version: int = 0
    file_bytes: int = field(default=0)

    @property
    def n_params(self) -> int:
        """Total number of parameters (weights, biases, norms)."""
        return sum(t.n_params for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        """Total bytes of tensor data."""
        return sum(t.nbytes for t in self.tensors)

    @property
    def bits_per_weight(self) -> float:
        """Bits of tensor data per parameter (0 for an empty file)."""
        return 8.0 * self.tensor_bytes / self.n_params if self.n_params else 0.0

    def type_counts(self) -> dict[str, int]:
        """Tensor type -> number of tensors of that type, most common first."""
        return dict(Counter(t.quant or t.type for t in self.tensors).most_common())

    def to_dict(self, max_array_items: int = MAX_ARRAY_ITEMS) -> dict[str, Any]:
        """A JSON-serializable summary (what ``ggquant inspect --json`` prints).

        Args:
            max_array_items: arrays longer than this become ``{"type", "count", "head"}``.

        Returns:
            ``{"path", "format", "version", "files", "metadata", "tensors", "totals"}``; each
            metadata entry is ``{"type", "value"}`` and each tensor has name, type, shape (NumPy
            order), ne (ggml order), bytes, offset, file.
        """
        meta = {k: {"type": self.metadata_types.get(k, _py_type(v)), "value": _jsonable(v, max_array_items)}
                for k, v in self.metadata.items()}
        tensors = [{"name": t.name, "type": t.type, "shape": list(t.shape), "ne": list(t.ne), "bytes": t.nbytes,
                    "offset": t.offset, "file": t.file, "params": t.n_params, **({"quant": t.quant} if t.quant else {})}
                   for t in self.tensors]
        totals = {"tensors": len(self.tensors), "params": self.n_params, "tensor_bytes": self.tensor_bytes,
                  "file_bytes": self.file_bytes, "bits_per_weight": round(self.bits_per_weight, 4),
                  "types": self.type_counts()}
        return {"path": self.path, "format": self.format_name, "version": self.version, "files": self.files,
                "metadata": meta, "tensors": tensors, "totals": totals}

    def format(self, max_array_items: int = MAX_ARRAY_ITEMS, tensors: bool = True) -> str:
        """A human-readable report: header line, metadata, tensor table, totals."""
        kind = f"GGUF v{self.version}" if self.format_name == "gguf" else self.format_name
        lines = [f"{self.path}: {kind}, {len(self.files)} file(s), {len(self.metadata)} metadata entries, "
                 f"{len(self.tensors)} tensors"]
        if self.metadata:
            lines.append("metadata:")
            kw = max(len(k) for k in self.metadata)
            tw = max(len(self.metadata_types.get(k, _py_type(v))) for k, v in self.metadata.items())
            for k, v in self.metadata.items():
                vt = self.metadata_types.get(k, _py_type(v))
                lines.append(f"  {k:<{kw}}  {vt:<{tw}}  {_short(v, max_array_items)}")
        if tensors and self.tensors:
            gguf = self.format_name == "gguf"
            nw = max(max(len(t.name) for t in self.tensors), 4)
            yw = max(max(len(t.quant or t.type) for t in self.tensors), 4)
            shapes = [_shape_text(t, gguf) for t in self.tensors]
            sw = max(max(len(s) for s in shapes), 5)
            lines.append("tensors:")
            lines.append(f"  {'name':<{nw}}  {'type':<{yw}}  {'shape':<{sw}}  {'bytes':>14}  {'offset':>14}")
            multi = len(self.files) > 1
            for t, s in zip(self.tensors, shapes):
                where = f"  {os.path.basename(t.file)}" if multi else ""
                lines.append(f"  {t.name:<{nw}}  {t.quant or t.type:<{yw}}  {s:<{sw}}  {t.nbytes:>14,}  "
                             f"{t.offset:>14,}{where}")
        types = ", ".join(f"{k} {v}" for k, v in self.type_counts().items())
        lines.append(f"totals: {len(self.tensors)} tensors, {self.n_params:,} parameters, "
                     f"{self.tensor_bytes:,} bytes of tensor data ({self.tensor_bytes / 2**20:.2f} MiB), "
                     f"{self.bits_per_weight:.2f} bits per weight; file(s) {self.file_bytes:,} bytes")
        if types:
            lines.append(f"types: {types}")
        return "\n".join(lines)


def _shape_text(t: TensorEntry, gguf: bool) -> str:
    if gguf:
        return "{" + ", ".join(str(d) for d in t.ne) + "}"
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def _py_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if isinstance(v, (list, tuple, np.ndarray)):
        return "array"
    if isinstance(v, Mapping):
        return "object"
    return "string" if isinstance(v, str) else type(v).__name__


def _jsonable(v: Any, limit: int) -> Any:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        items = [_jsonable(x, limit) for x in v[:limit]]
        if len(v) > limit:
            return {"count": len(v), "head": items}
        return items
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x, limit) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    return v


def _short(v: Any, limit: int) -> str:
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        head = ", ".join(_short(x, limit) for x in v[:limit])
        return f"[{head}, ... ({len(v)} items)]" if len(v) > limit else f"[{head}]"
    if isinstance(v, str):
        s = v if len(v) <= 120 else v[:117] + "..."
        return json.dumps(s, ensure_ascii=False)
    if isinstance(v, Mapping):
        return _short(json.dumps(_jsonable(v, limit)), limit)
    return str(v)


def _gguf_type_name(vt: GGUFValueType, et: GGUFValueType | None) -> str:
    return f"ARRAY[{et.name}]" if vt == GGUFValueType.ARRAY and et is not None else vt.name


def _inspect_gguf(path: str) -> Inspection:
    reader: GGUFReader | GGUFSplitReader = read_gguf_split(path)
    with reader:
        readers = reader.readers if isinstance(reader, GGUFSplitReader) else [reader]
        tensors = []
        for r in readers:
            for t in r.tensors:
                tensors.append(TensorEntry(t.name, t.type.name, t.shape, t.nbytes, t.offset, r.path,
                                           math.prod(t.shape)))
        meta = dict(reader.metadata)
        types = {k: _gguf_type_name(*reader.kv_types[k]) for k in meta}
        files = [r.path for r in readers]
        return Inspection(path, "gguf", files, meta, types, tensors, reader.version,
                          sum(os.path.getsize(f) for f in files))


def _data_start(path: str) -> int:
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8:  # safe_open has already validated the file; this is a race or a special file
        raise FormatError(f"{path}: too short for a safetensors header")
    return 8 + int(struct.unpack("<Q", head)[0])


def _safetensors_entries(f: SafetensorsFile, mlx: Mapping[str, Any] | None) -> list[TensorEntry]:
    start = _data_start(f.path)
    names = sorted(f.keys(), key=lambda n: f.data_offsets(n)[0])
    out = []
    for n in names:
        shape, dtype = f.shape(n), f.dtype(n)
        params, quant = math.prod(shape), ""
        base = n[: -len(".weight")] if n.endswith(".weight") else None
        if mlx is not None and base is not None and f"{base}.scales" in f and dtype == "U32":
            _, bits, group = layer_quant(mlx, base, shape, f.shape(f"{base}.scales"))
            params = params * 32 // bits
            quant = f"mlx {bits}-bit/g{group}"
        out.append(TensorEntry(n, dtype, shape, f.nbytes(n), start + f.data_offsets(n)[0], f.path, params, quant))
    return out


def _read_config(d: Path) -> dict[str, Any]:
    p = d / "config.json"
    if not p.is_file():
        return {}
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FormatError(f"{p}: cannot read config.json: {e}") from None
    return cfg if isinstance(cfg, dict) else {}


def _inspect_safetensors(path: str, files: list[str], config: dict[str, Any]) -> Inspection:
    q = config.get("quantization")
    mlx = q if isinstance(q, Mapping) and "bits" in q else None
    meta: dict[str, Any] = {}
    tensors: list[TensorEntry] = []
    for p in files:
        with safe_open(p) as f:
            if len(files) == 1 or not meta:
                meta.update(f.metadata() or {})
            tensors += _safetensors_entries(f, mlx)
    meta.update({f"config.{k}": v for k, v in config.items()})
    return Inspection(path, "mlx" if mlx is not None else "safetensors", files, meta, {}, tensors, 0,
                      sum(os.path.getsize(f) for f in files))


def _shards_of(d: Path) -> list[str]:
    index = d / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            names = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise FormatError(f"{index}: not a safetensors index ({e})") from None
        files = [d / n for n in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FormatError(f"{index} names shard(s) that do not exist: {', '.join(missing)}")
        return [str(f) for f in files]
    return [str(f) for f in sorted(d.glob("*.safetensors"))]


def inspect_file(path: str | os.PathLike[str]) -> Inspection:
    """Read the headers of a model file or directory and describe it.

    Args:
        path: a ``.gguf`` file (any shard of a ``-0000i-of-0000N.gguf`` split set opens the set), a
            ``.safetensors`` file, a directory with ``model.safetensors.index.json`` or
            ``*.safetensors`` files (Hugging Face or MLX), or a directory holding ``.gguf`` files
            (which must then be one file or one split set).

    Returns:
        An :class:`Inspection`: metadata, tensor table, totals.

    Raises:
        GGQuantIOError: the path does not exist or holds no model file.
        FormatError: a malformed file (:class:`ggquant.GGUFError`, :class:`ggquant.SafetensorsError`)
            or index.

    Example:
        >>> from ggquant.inspect_file import inspect_file
        >>> print(inspect_file("model-q4_k_m.gguf").format())  # doctest: +SKIP
    """
    p = os.fspath(path)
    if os.path.isdir(p):
        d = Path(p)
        shards = _shards_of(d)
        if shards:
            return _inspect_safetensors(p, shards, _read_config(d))
        ggufs = sorted(str(f) for f in d.glob("*.gguf"))
        heads = [g for g in ggufs if "-of-" not in g or "-00001-of-" in g]
        if len(heads) == 1:
            return _inspect_gguf(heads[0])
        what = f"{len(heads)} GGUF files; name one" if heads else "no .safetensors or .gguf file"
        raise GGQuantIOError(f"{p}: {what}")
    if not os.path.exists(p):
        raise GGQuantIOError(f"{p}: no such file or directory")
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise GGQuantIOError(f"{p}: cannot read: {e.strerror or e}") from None
    if magic == b"GGUF":
        return _inspect_gguf(p)
    return _inspect_safetensors(p, [p], {})


__all__ = ["Inspection", "TensorEntry", "inspect_file", "MAX_ARRAY_ITEMS"]
