"""Read and write GGUF files (v2 and v3, little-endian), strictly and without copying tensor data.

The reader memory-maps the file and validates every count, length and offset (as ggml's C reader
does, and a little stricter); a malformed file raises :class:`ggquant.GGUFError` naming the cause.
The writer streams one tensor at a time into a temporary file and renames it into place at the end,
so an error or interrupt never leaves a partial file; :meth:`GGUFWriter.tensor_buffer` lets tensors
be produced in place in the preallocated, memory-mapped file instead of copied into it. Its layout is
byte for byte that of ggml's and gguf-py's writers.

Example:
    >>> import numpy as np, os, tempfile, ggquant
    >>> from ggquant.gguf import GGUFReader, GGUFWriter, GGUFValueType
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.gguf")
    >>> w8 = np.arange(64, dtype=np.float32).reshape(2, 32)
    >>> with GGUFWriter(path) as w:
    ...     w.add_kv("general.architecture", "llama")
    ...     w.add_kv("llama.block_count", 1, GGUFValueType.UINT32)
    ...     w.add_tensor_info("w", shape=(2, 32), type="q8_0")
    ...     w.write_tensor("w", ggquant.quantize(w8, "q8_0"))
    >>> r = GGUFReader(path)
    >>> r.metadata["llama.block_count"], r.kv_types["llama.block_count"][0].name
    (1, 'UINT32')
    >>> t = r.tensor("w")
    >>> t.type.name, t.shape, t.data.shape
    ('Q8_0', (2, 32), (2, 34))
    >>> r.close()
"""

from __future__ import annotations

import math
import os
import re
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from ._checks import int_arg, shape_arg
from .errors import GGQuantError, GGUFError, ShapeError
from .fileio import PathArg, fs_path, remove_stale_temporaries, unlink_committed
from .gguf_values import FROM_NUMPY as _FROM_NP
from .gguf_values import NUMPY_DTYPES as _NP
from .gguf_values import GGUFValueType
from .qtypes import GGMLType, resolve_type, type_info


_TENSOR_DTYPES = {
    GGMLType.F32: np.float32,
    GGMLType.F16: np.float16,
    GGMLType.I8: np.int8,
    GGMLType.I16: np.int16,
    GGMLType.I32: np.int32,
    GGMLType.I64: np.int64,
    GGMLType.F64: np.float64,
}
_SPLIT_RE = re.compile(r"^(?P<prefix>.*)-(?P<i>\d{5})-of-(?P<n>\d{5})\.gguf$")


def _decode(b: bytes) -> str:
    # surrogateescape keeps invalid UTF-8 bytes, so a read -> write round trip is exact
    return b.decode("utf-8", "surrogateescape")


def _encode(s: str | bytes) -> bytes:
    return s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape")


class GGUFTensor:
    """One tensor of a GGUF file.

    Attributes:
        name: tensor name.
        type: its :class:`ggquant.GGMLType`.
        shape: NumPy-order shape in values (GGUF stores it reversed).
        offset: absolute file offset of the data.
        nbytes: size of the data in bytes.
        data: zero-copy read-only view of the data (made when asked for): typed for
            F32/F16/I8..F64, ``uint16`` bits for BF16 (an ``ml_dtypes.bfloat16`` view when
            ml_dtypes is installed), ``uint8`` blocks of byte shape ``shape[:-1] + (row_bytes,)``
            for quantized types. A zero-element tensor whose other dimensions multiply past what
            NumPy can index (ggml allows it) comes as an empty 1-D view.
    """

    __slots__ = ("name", "type", "shape", "offset", "nbytes", "_buf")

    def __init__(self, name: str, type: GGMLType, shape: tuple[int, ...], offset: int, nbytes: int, buf: np.ndarray):
        self.name = name
        self.type = type
        self.shape = shape
        self.offset = offset
        self.nbytes = nbytes
        self._buf = buf

    @property
    def data(self) -> np.ndarray:
        return _tensor_view(self._buf, self.type, self.shape, self.offset, self.nbytes)

    def __repr__(self) -> str:
        return f"GGUFTensor({self.name!r}, {self.type.name}, shape={self.shape}, offset={self.offset}, nbytes={self.nbytes})"


def _tensor_view(buf: np.ndarray, t: GGMLType, shape: tuple[int, ...], offset: int, nbytes: int) -> np.ndarray:
    raw = buf[offset : offset + nbytes]
    try:
        return _typed_view(raw, t, shape)
    except ValueError:
        if nbytes == 0:  # a zero-element shape NumPy cannot represent (ggml allows it)
            return raw
        raise


def _typed_view(raw: np.ndarray, t: GGMLType, shape: tuple[int, ...]) -> np.ndarray:
    if t in _TENSOR_DTYPES:
        return raw.view(_TENSOR_DTYPES[t]).reshape(shape)
    if t == GGMLType.BF16:
        try:
            import ml_dtypes

            return raw.view(ml_dtypes.bfloat16).reshape(shape)
        except ImportError:
            return raw.view(np.uint16).reshape(shape)
    info = type_info(t)
    if not shape:
        return raw
    return raw.reshape(*shape[:-1], shape[-1] // info.block_size * info.type_size)


class _TensorList(Sequence[GGUFTensor]):
    """The tensors of a reader, made on demand from the C++ index (a file may hold millions)."""

    _CHUNK = 4096

    def __init__(self, reader: GGUFReader):
        self._h = reader._h
        self._buf = reader._buf
        self._n: int = reader._h.n_tensors
        self._start: int = reader._h.data_start

    def _make(self, row: tuple[bytes, int, tuple[int, ...], int, int]) -> GGUFTensor:
        name_b, ttype, ne, offset, nbytes = row
        return GGUFTensor(_decode(name_b), GGMLType(ttype), ne[::-1], self._start + offset, nbytes, self._buf)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:  # int -> GGUFTensor, slice -> list
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("tensor index out of range")
        return self._make(self._h.tensors(i, i + 1)[0])

    def __iter__(self) -> Iterator[GGUFTensor]:
        for start in range(0, self._n, self._CHUNK):
            for row in self._h.tensors(start, start + self._CHUNK):
                yield self._make(row)

    def find(self, name: str) -> GGUFTensor | None:
        i = self._h.find_tensor(_encode(name))
        return None if i < 0 else self[i]

    def __repr__(self) -> str:
        return f"<{self._n} GGUF tensors>"


class GGUFReader:
    """A memory-mapped, validated GGUF file.

    Args:
        path: the ``.gguf`` file (``str``, ``bytes`` or ``os.PathLike``).

    Attributes:
        version: 2 or 3.
        alignment: the data alignment (``general.alignment``, default 32).
        metadata: ordered mapping key -> value (``int``, ``float``, ``bool``, ``str``; arrays as a
            ``list`` of ``str`` or a NumPy array).
        kv_types: key -> ``(GGUFValueType, element GGUFValueType or None)``, the on-disk types.
        tensors: a sequence of :class:`GGUFTensor` in file order, made on demand (opening a file
            with a million tensors costs no more memory than ggml's own reader).

    Raises:
        GGUFError: the file is malformed (the message names the key, tensor or offset).
        GGQuantIOError: the file cannot be opened or mapped, or is not a regular file.
    """

    def __init__(self, path: PathArg):
        self.path = fs_path(path, "GGUF file")
        self._h = _core.gguf_read(os.fsencode(self.path))
        self._buf = np.frombuffer(self._h, dtype=np.uint8)  # type: ignore[call-overload]  # GGUFHandle is a buffer
        self.version: int = self._h.version
        self.alignment: int = self._h.alignment
        self.metadata: OrderedDict[str, Any] = OrderedDict()
        self.kv_types: dict[str, tuple[GGUFValueType, GGUFValueType | None]] = {}
        for key_b, vtype, etype, count, offset, strings in self._h.kvs():
            key = _decode(key_b)
            vt = GGUFValueType(vtype)
            et = GGUFValueType(etype) if etype >= 0 else None
            self.kv_types[key] = (vt, et)
            self.metadata[key] = self._value(vt, et, count, offset, strings)
        self.tensors: Sequence[GGUFTensor] = _TensorList(self)

    def _value(self, vt: GGUFValueType, et: GGUFValueType | None, count: int, offset: int, strings: list[bytes]) -> Any:
        if vt == GGUFValueType.STRING:
            return _decode(strings[0])
        if vt == GGUFValueType.ARRAY:
            if et == GGUFValueType.STRING:
                return [_decode(s) for s in strings]
            arr = self._buf[offset : offset + count * _NP[et].itemsize].view(_NP[et])  # type: ignore[index]
            return arr != 0 if et == GGUFValueType.BOOL else arr
        v = self._buf[offset : offset + _NP[vt].itemsize].view(_NP[vt])[0]
        if vt == GGUFValueType.BOOL:
            return bool(v)
        return float(v) if vt in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64) else int(v)

    def tensor(self, name: str) -> GGUFTensor:
        """The tensor called ``name`` (``KeyError`` if absent)."""
        t = self.tensors.find(name) if isinstance(self.tensors, _TensorList) else None
        if t is None:
            raise KeyError(f"no tensor named {name!r} in {self.path!r}")
        return t

    def close(self) -> None:
        """Drop this reader's references to the mapping (views handed out keep it alive)."""
        self.tensors = []
        self._buf = None  # type: ignore[assignment,unused-ignore]
        self._h = None  # type: ignore[assignment]

    def __enter__(self) -> GGUFReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _infer_type(value: Any) -> GGUFValueType:
    if isinstance(value, (bool, np.bool_)):
        return GGUFValueType.BOOL
    if isinstance(value, (str, bytes)):
        return GGUFValueType.STRING
    if isinstance(value, (list, tuple, np.ndarray)):
        return GGUFValueType.ARRAY
    if isinstance(value, np.generic):
        return _FROM_NP[value.dtype]
    if isinstance(value, int):
        return GGUFValueType.INT32
    if isinstance(value, float):
        return GGUFValueType.FLOAT32
    raise GGUFError(f"cannot store a value of type {type(value).__name__} in GGUF metadata")


def _scalar_bytes(key: str, value: Any, vt: GGUFValueType) -> bytes:
    dt = _NP[vt]
    if vt == GGUFValueType.BOOL:
        return b"\x01" if value else b"\x00"
    if dt.kind in "iu":
        if isinstance(value, (float, np.floating)) or not (np.iinfo(dt).min <= int(value) <= np.iinfo(dt).max):
            raise GGUFError(f"metadata {key!r}: {value!r} does not fit {vt.name}")
        return np.array(int(value), dtype=dt).tobytes()
    return np.array(float(value), dtype=dt).tobytes()


def _encode_value(key: str, value: Any, vtype: Any, elem_type: Any) -> tuple[GGUFValueType, GGUFValueType | None, int, bytes, list[bytes]]:
    """(type, element type, count, payload, strings) of one metadata value, as the C++ writer takes them."""
    vt = GGUFValueType(vtype) if vtype is not None else _infer_type(value)
    payload, strings, count, et = b"", [], 1, None
    if vt == GGUFValueType.STRING:
        strings = [_encode(value)]
    elif vt == GGUFValueType.ARRAY:
        if isinstance(value, np.ndarray):
            et = GGUFValueType(elem_type) if elem_type is not None else _FROM_NP.get(value.dtype)
            if et is None:
                raise GGUFError(f"metadata {key!r}: no GGUF type for array dtype {value.dtype}")
        else:
            value = list(value)
            if elem_type is not None:
                et = GGUFValueType(elem_type)
            elif value:
                et = _infer_type(value[0])
            else:
                raise GGUFError(f"metadata {key!r}: an empty array needs elem_type")
        if et == GGUFValueType.ARRAY:
            raise GGUFError(f"metadata {key!r}: arrays of arrays cannot be read by llama.cpp")
        count = len(value)
        if et == GGUFValueType.STRING:
            strings = [_encode(s) for s in value]
        else:
            arr = np.asarray(value)
            if et == GGUFValueType.BOOL:
                payload = (arr != 0).astype(np.uint8).tobytes()
            else:
                dt = _NP[et]
                if dt.kind in "iu" and arr.size and (arr.dtype.kind == "f" or arr.min() < np.iinfo(dt).min or arr.max() > np.iinfo(dt).max):
                    raise GGUFError(f"metadata {key!r}: values do not fit {et.name}")
                payload = arr.astype(dt).tobytes()
    else:
        payload = _scalar_bytes(key, value, vt)
    return vt, et, count, payload, strings


@dataclass
class _PendingTensor:
    name: str
    ne: list[int]
    type: GGMLType
    nbytes: int


class GGUFWriter:
    """Streaming GGUF v3 writer; see the module docstring for an example.

    Add metadata with :meth:`add_kv` and every tensor's name, shape and type with
    :meth:`add_tensor_info`; then hand over each tensor's bytes with :meth:`write_tensor` in the
    same order. Leaving the ``with`` block (or :meth:`close`) renames the finished file(s) into
    place; an exception (or :meth:`abort`) deletes them.

    Args:
        path: output file. With splitting, shards are named ``{stem}-00001-of-0000N.gguf``.
        alignment: data alignment, a power of two (default 32); a non-default value is stored as
            ``general.alignment``.
        split_max_tensors: at most this many tensors per shard.
        split_max_size: at most this many bytes of tensor data per shard (a larger tensor gets a
            shard of its own). Shard 1 holds all metadata plus ``split.no`` (u16),
            ``split.count`` (u16) and ``split.tensors.count`` (i32); the others only ``split.*``.
    """

    def __init__(
        self,
        path: PathArg,
        alignment: int = 32,
        split_max_tensors: int | None = None,
        split_max_size: int | None = None,
    ):
        self.path = fs_path(path, "GGUF output")
        if not isinstance(alignment, (int, np.integer)) or isinstance(alignment, bool):
            raise GGUFError(f"alignment must be an int, got {alignment!r}")
        self.alignment = int(alignment)
        if self.alignment <= 0 or self.alignment & (self.alignment - 1) or self.alignment > 1 << 24:
            raise GGUFError(f"alignment {alignment} is not a power of two up to 2^24")
        self.split_max_tensors = split_max_tensors
        self.split_max_size = split_max_size
        self._kvs: OrderedDict[str, tuple[GGUFValueType, GGUFValueType | None, int, bytes, list[bytes]]] = OrderedDict()
        self._tensors: list[_PendingTensor] = []
        self._index: dict[str, int] = {}  # name -> declaration index
        self._shards: list[Any] | None = None  # one core writer per file, once the header is written
        self._slot: list[tuple[Any, int]] = []  # per tensor: (its shard's core writer, its index there)
        self._next = 0
        self._done = False

    # -- metadata
    def add_kv(self, key: str, value: Any, vtype: GGUFValueType | None = None, elem_type: GGUFValueType | None = None) -> None:
        """Add one metadata entry, in the order it will be written.

        Args:
            key: the key, e.g. ``"llama.block_count"``.
            value: ``bool``, ``int``, ``float``, ``str``, or a list / NumPy array for arrays.
            vtype: the on-disk type; inferred when ``None`` (bool -> BOOL, int -> INT32,
                float -> FLOAT32, str -> STRING, list/array -> ARRAY). Pass it for every number:
                llama.cpp checks types exactly (counts are UINT32).
            elem_type: element type of an ARRAY; inferred from the array's dtype or first element.

        Raises:
            GGUFError: duplicate key, a value that does not fit its type, nested or untyped empty arrays.
        """
        if self._shards is not None:
            raise GGUFError(f"metadata {key!r} added after the header was written")
        if not isinstance(key, str) or not key:
            raise GGUFError(f"metadata keys must be non-empty str, got {key!r}"[:200])
        if key in self._kvs:
            raise GGUFError(f"duplicate metadata key {key!r}")
        try:
            vt, et, count, payload, strings = _encode_value(key, value, vtype, elem_type)
        except GGQuantError:
            raise
        except (TypeError, ValueError, OverflowError, AttributeError) as e:
            raise GGUFError(f"metadata {key!r}: cannot store {value!r}"[:200] + f" as GGUF metadata: {e}") from None
        if key == "general.alignment" and (vt != GGUFValueType.UINT32 or int(value) != self.alignment):
            raise GGUFError(f"general.alignment must be a UINT32 equal to the writer's alignment {self.alignment}")
        self._kvs[key] = (vt, et, count, payload, strings)

    # -- tensors
    def add_tensor_info(self, name: str, shape: Sequence[int], type: GGMLType | str | int, *, n_dims: int | None = None) -> None:
        """Declare a tensor: NumPy-order ``shape`` (values, not bytes) and ggml ``type``."""
        if self._shards is not None:
            raise GGUFError(f"tensor {name!r} added after the header was written")
        if not isinstance(name, str):
            raise GGUFError(f"tensor names must be str, got {name.__class__.__name__}")
        if name in self._index:
            raise GGUFError(f"duplicate tensor name {name!r}")
        if not name or len(_encode(name)) >= 64:
            raise GGUFError(f"tensor name {name!r} must be 1 to 63 bytes (ggml's limit)")
        t = resolve_type(type)
        try:
            ne = list(reversed(shape_arg(shape)))
        except ShapeError as e:
            raise GGUFError(f"tensor {name!r}: {e}") from None
        if n_dims is not None:
            ne = (ne + [1] * 4)[: int_arg(n_dims, "n_dims", 0, 4)]
        if len(ne) > 4 or any(d < 0 for d in ne):
            raise GGUFError(f"tensor {name!r}: shape {tuple(shape)} must have at most 4 non-negative dimensions")
        info = type_info(t)
        if ne and ne[0] % info.block_size:
            raise GGUFError(
                f"tensor {name!r}: row length {ne[0]} is not a multiple of the {info.name} block size {info.block_size}"
            )
        nbytes = (ne[0] // info.block_size if ne else 1) * info.type_size * math.prod(ne[1:])
        self._index[name] = len(self._tensors)
        self._tensors.append(_PendingTensor(name, ne, t, nbytes))

    def _plan_shards(self) -> list[list[int]]:
        groups: list[list[int]] = [[]]
        size = 0
        for i, t in enumerate(self._tensors):
            g = groups[-1]
            full = (self.split_max_tensors is not None and len(g) >= self.split_max_tensors) or (
                self.split_max_size is not None and g and size + t.nbytes > self.split_max_size
            )
            if full:
                groups.append([])
                size = 0
            groups[-1].append(i)
            size += t.nbytes
        return groups

    def shard_paths(self) -> list[str]:
        """The file(s) this writer produces (known once all tensor infos are added)."""
        groups = self._plan_shards()
        if len(groups) == 1:
            return [self.path]
        stem = self.path[:-5] if self.path.endswith(".gguf") else self.path
        return [f"{stem}-{i + 1:05d}-of-{len(groups):05d}.gguf" for i in range(len(groups))]

    def header_sizes(self) -> list[int]:
        """Bytes of each file's header (metadata and tensor infos, padded to the alignment) exactly as
        :meth:`write_header` writes them; known once all metadata and tensor infos are added.

        Example:
            >>> w = GGUFWriter("never-written.gguf")
            >>> w.add_kv("general.architecture", "llama")
            >>> w.add_tensor_info("w", shape=(2, 32), type="f32")
            >>> w.header_sizes()
            [128]
        """
        def kv(key: str, vt: GGUFValueType, payload: bytes, strings: list[bytes]) -> int:
            array = 4 + 8 if vt == GGUFValueType.ARRAY else 0  # element type and count
            return 8 + len(_encode(key)) + 4 + array + len(payload) + sum(8 + len(b) for b in strings)

        groups = self._plan_shards()
        kvs = sum(kv(k, vt, payload, strings) for k, (vt, _, _, payload, strings) in self._kvs.items())
        if self.alignment != 32 and "general.alignment" not in self._kvs:
            kvs += kv("general.alignment", GGUFValueType.UINT32, b"1234", [])
        split = 0 if len(groups) == 1 else (kv("split.no", GGUFValueType.UINT16, b"12", []) +
                                            kv("split.count", GGUFValueType.UINT16, b"12", []) +
                                            kv("split.tensors.count", GGUFValueType.INT32, b"1234", []))
        later = self.alignment != 32 or "general.alignment" in self._kvs  # the only key shards 2.. repeat
        align = kv("general.alignment", GGUFValueType.UINT32, b"1234", []) if later else 0
        sizes = []
        for i, idx in enumerate(groups):
            n = 24 + (kvs if i == 0 else align) + split
            for j in idx:
                t = self._tensors[j]
                n += 8 + len(_encode(t.name)) + 4 + 8 * len(t.ne) + 4 + 8
            sizes.append((n + self.alignment - 1) // self.alignment * self.alignment)
        return sizes

    def write_header(self) -> None:
        """Write header and tensor infos (done automatically by the first :meth:`write_tensor`)."""
        if self._shards is not None:
            return
        groups = self._plan_shards()
        paths = self.shard_paths()
        kvs = list(self._kvs.items())
        if self.alignment != 32 and "general.alignment" not in self._kvs:
            kvs.append(("general.alignment", (GGUFValueType.UINT32, None, 1, np.uint32(self.alignment).tobytes(), [])))
        self._shards = []
        try:
            for i, (path, idx) in enumerate(zip(paths, groups)):
                remove_stale_temporaries(path)  # left by a writer that was killed
                core = _core.GGUFWriterCore(os.fsencode(path), self.alignment)
                self._shards.append(core)
                shard_kvs = kvs if i == 0 else [kv for kv in kvs if kv[0] == "general.alignment"]
                for key, (vt, et, count, payload, strings) in shard_kvs:
                    core.add_kv(key, int(vt), -1 if et is None else int(et), count, payload, strings)
                if len(paths) > 1:
                    core.add_kv("split.no", int(GGUFValueType.UINT16), -1, 1, np.uint16(i).tobytes(), [])
                    core.add_kv("split.count", int(GGUFValueType.UINT16), -1, 1, np.uint16(len(paths)).tobytes(), [])
                    core.add_kv("split.tensors.count", int(GGUFValueType.INT32), -1, 1,
                                np.int32(len(self._tensors)).tobytes(), [])
                for k, j in enumerate(idx):
                    t = self._tensors[j]
                    core.add_tensor_info(t.name, t.ne, int(t.type))
                    self._slot.append((core, k))
                core.write_header()
        except GGQuantError:
            self.abort()
            raise

    def write_tensor(self, name: str, data: Any) -> None:
        """Write the next tensor's data (tensors must come in the order they were declared).

        ``data``: the exact bytes, as a uint8 array from :func:`ggquant.quantize`, or a typed array
        (e.g. float32 for F32, float16 for F16) whose raw bytes are the tensor's data, or the
        tensor's own :meth:`tensor_buffer` once filled (then nothing is copied).
        """
        self.write_header()
        if self._next >= len(self._tensors):
            raise GGUFError(f"tensor {name!r} was not declared (all {len(self._tensors)} tensors are written)")
        t = self._tensors[self._next]
        if name != t.name:
            raise GGUFError(f"expected data of tensor {t.name!r} next (declaration order), got {name!r}")
        arr = np.ascontiguousarray(data)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.nbytes != t.nbytes:
            raise GGUFError(f"tensor {name!r} ({t.type.name}) needs {t.nbytes} bytes of data, got {arr.nbytes}")
        core = self._slot[self._next][0]
        try:
            core.write_tensor_data(arr.reshape(-1).view(np.uint8))
        except GGQuantError:
            self.abort()
            raise
        self._next += 1

    def tensor_buffer(self, name: str) -> np.ndarray | None:
        """Where tensor ``name``'s bytes go in the output file: a writable ``uint8`` array of its
        size, to be filled in place (e.g. as the ``out`` of a kernel) and then handed to
        :meth:`write_tensor`, which then copies nothing. The first call writes the header and
        preallocates the whole file; tensors may be filled in any order, but are still written in
        declaration order. Returns None where the file system cannot preallocate (then write from
        your own buffer). Fill each tensor's array only before its :meth:`write_tensor`; after that its
        pages belong to the file.

        Raises:
            GGUFError: ``name`` was not declared.
            GGQuantIOError: the disk has no room for the file (nothing is left behind).

        Example:
            >>> import numpy as np, os, tempfile, ggquant
            >>> from ggquant.batch import QuantJob, quantize_batch
            >>> from ggquant.gguf import GGUFReader, GGUFWriter
            >>> path = os.path.join(tempfile.mkdtemp(), "inplace.gguf")
            >>> x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
            >>> with GGUFWriter(path) as w:
            ...     w.add_tensor_info("w", shape=(2, 32), type="q8_0")
            ...     buf = w.tensor_buffer("w")  # None where the file system cannot preallocate
            ...     _ = quantize_batch([QuantJob(x, "q8_0", buf)])  # the kernel writes into the file
            ...     w.write_tensor("w", buf)
            >>> with GGUFReader(path) as r:
            ...     bool((r.tensor("w").data == ggquant.quantize(x, "q8_0")).all())
            True
        """
        self.write_header()
        index = self._index.get(name) if isinstance(name, str) else None
        if index is None:
            raise GGUFError(f"tensor {name!r} was not declared")
        core, k = self._slot[index]
        try:
            buf: np.ndarray | None = core.tensor_buffer(k)
        except GGQuantError:
            self.abort()
            raise
        return buf

    def close(self) -> None:
        """Finish: check every declared tensor was written, then rename the file(s) into place."""
        if self._done:
            return
        self.write_header()
        if self._next != len(self._tensors):
            missing = self._tensors[self._next].name
            self.abort()
            raise GGUFError(f"only {self._next} of {len(self._tensors)} tensors were written; {missing!r} is missing")
        committed: list[str] = []
        try:
            for core, path in zip(self._shards, self.shard_paths()):  # type: ignore[arg-type]
                core.commit()
                committed.append(path)
        except GGQuantError:
            unlink_committed(committed)
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Discard everything written so far; no output file remains."""
        for core in self._shards or []:
            core.abort()
        self._done = True

    def __enter__(self) -> GGUFWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class GGUFSplitReader:
    """A split GGUF set (``prefix-00001-of-0000N.gguf`` ...) read as one model.

    ``metadata``/``kv_types`` come from the first shard; ``tensors`` lists every shard's tensors in
    order. Raises :class:`GGUFError` when a shard is missing, or split counts or names disagree.
    """

    def __init__(self, readers: list[GGUFReader]):
        self.readers = readers
        first = readers[0]
        self.version, self.alignment = first.version, first.alignment
        self.metadata, self.kv_types = first.metadata, first.kv_types
        self.tensors = [t for r in readers for t in r.tensors]
        self._by_name: dict[str, GGUFTensor] = {}
        for t in self.tensors:
            if t.name in self._by_name:
                raise GGUFError(f"tensor {t.name!r} appears in more than one shard")
            self._by_name[t.name] = t
        expected = first.metadata.get("split.tensors.count")
        if expected is not None and expected != len(self.tensors):
            raise GGUFError(f"split.tensors.count says {expected} tensors, the shards hold {len(self.tensors)}")

    def tensor(self, name: str) -> GGUFTensor:
        return self._by_name[name]

    def close(self) -> None:
        for r in self.readers:
            r.close()

    def __enter__(self) -> GGUFSplitReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_gguf_split(path: PathArg) -> GGUFReader | GGUFSplitReader:
    """Open a GGUF file, or a whole split set given any of its shards.

    Example:
        >>> from ggquant.gguf import read_gguf_split
        >>> # model = read_gguf_split("model-00001-of-00003.gguf"); model.tensor("output.weight")
    """
    path = fs_path(path, "GGUF file")
    m = _SPLIT_RE.match(path)
    if not m:
        return GGUFReader(path)
    n = int(m["n"])
    paths = [f"{m['prefix']}-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise GGUFError(f"split set {paths[0]!r} is missing shard(s): {', '.join(missing)}")
    readers = [GGUFReader(p) for p in paths]
    for i, r in enumerate(readers):
        no, count = r.metadata.get("split.no"), r.metadata.get("split.count")
        if no != i or count != n:
            raise GGUFError(f"{paths[i]!r} says split.no={no}, split.count={count}; expected {i} and {n}")
    return GGUFSplitReader(readers)


__all__ = ["GGUFValueType", "GGUFReader", "GGUFWriter", "GGUFTensor", "GGUFSplitReader", "read_gguf_split"]
