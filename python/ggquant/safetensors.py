"""Read and write safetensors files: memory-mapped, zero-copy, strict with untrusted input.

Reading validates the whole header as the reference implementation does (offsets tile the buffer
with no overlap, hole or trailing byte; sizes checked for overflow; UTF-8; known dtypes; string
metadata) and also rejects duplicate JSON keys. Any violation raises
:class:`ggquant.SafetensorsError` naming the cause and the tensor.

Tensors come back as read-only NumPy views of the memory map (no copy). Dtypes without a NumPy
equivalent (BF16, the F8 family) are returned as ``ml_dtypes`` arrays when ``ml_dtypes`` is
importable, otherwise as raw unsigned-integer views of the same bits (``uint16`` for BF16,
``uint8`` for F8); :meth:`SafetensorsFile.get_float32` converts any of them to float32 either way.
The sub-byte types F4, F6_E2M3 and F6_E3M2 are returned as their packed bytes (1-D ``uint8``).

Writing produces the reference layout byte for byte (tensors sorted by dtype alignment, then by
name; header padded with spaces to a multiple of 8), streams one tensor at a time, and is atomic:
the file appears under its name only once complete.

Example:
    >>> import numpy as np, ggquant, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "w.safetensors")
    >>> ggquant.save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, p, metadata={"format": "np"})
    >>> with ggquant.safe_open(p) as f:
    ...     print(f.keys(), f.shape("w"), f.dtype("w"), f.metadata())
    ...     print(f.get("w")[1])
    ['w'] (2, 3) F32 {'format': 'np'}
    [3. 4. 5.]
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from . import _core
from ._checks import shape_arg
from . import torch_io as _torch_io
from .errors import GGQuantError, GGQuantIOError, SafetensorsError, ShapeError
from .fileio import PathArg, fs_path, read_regular_file, remove_stale_temporaries

try:  # optional: NumPy dtypes for BF16 and the F8 family
    import ml_dtypes as _ml_dtypes
except ImportError:  # pragma: no cover - exercised only where ml_dtypes is missing
    _ml_dtypes = None  # type: ignore[assignment]

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

_NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "I16": np.int16,
    "U16": np.uint16,
    "F16": np.float16,
    "I32": np.int32,
    "U32": np.uint32,
    "F32": np.float32,
    "C64": np.complex64,
    "F64": np.float64,
    "I64": np.int64,
    "U64": np.uint64,
}
# safetensors dtype -> (ml_dtypes attribute, raw fallback)
_EXTENDED_DTYPES: dict[str, tuple[str, Any]] = {
    "BF16": ("bfloat16", np.uint16),
    "F8_E5M2": ("float8_e5m2", np.uint8),
    "F8_E4M3": ("float8_e4m3fn", np.uint8),
    "F8_E8M0": ("float8_e8m0fnu", np.uint8),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", np.uint8),
    "F8_E5M2FNUZ": ("float8_e5m2fnuz", np.uint8),
}
_PACKED_DTYPES = {"F4", "F6_E2M3", "F6_E3M2"}
ALL_DTYPES: tuple[str, ...] = tuple(_NUMPY_DTYPES) + tuple(_EXTENDED_DTYPES) + tuple(sorted(_PACKED_DTYPES))

_MISSING: Any = object()


def numpy_dtype(st_dtype: str) -> np.dtype:
    """The NumPy dtype that :meth:`SafetensorsFile.get` uses for a safetensors dtype name.

    Args:
        st_dtype: a safetensors dtype name such as ``"F16"`` or ``"BF16"``.

    Returns:
        The NumPy dtype (an ``ml_dtypes`` dtype for BF16/F8 when available, else the raw
        unsigned integer of the same width; ``uint8`` for the packed F4/F6 types).

    Example:
        >>> from ggquant.safetensors import numpy_dtype
        >>> numpy_dtype("F16")
        dtype('float16')
    """
    if st_dtype in _NUMPY_DTYPES:
        return np.dtype(_NUMPY_DTYPES[st_dtype])
    if st_dtype in _EXTENDED_DTYPES:
        attr, raw = _EXTENDED_DTYPES[st_dtype]
        if _ml_dtypes is not None and hasattr(_ml_dtypes, attr):
            return np.dtype(getattr(_ml_dtypes, attr))
        return np.dtype(raw)
    if st_dtype in _PACKED_DTYPES:
        return np.dtype(np.uint8)
    raise SafetensorsError(f"[safetensors] unknown safetensors dtype {st_dtype!r}")


def safetensors_dtype(dtype: Any) -> str:
    """The safetensors dtype name for a NumPy dtype (including ``ml_dtypes`` types).

    Args:
        dtype: a NumPy dtype or anything ``np.dtype`` accepts.

    Returns:
        The safetensors name, e.g. ``"F32"`` or ``"BF16"``.

    Example:
        >>> import numpy as np
        >>> from ggquant.safetensors import safetensors_dtype
        >>> safetensors_dtype(np.int8)
        'I8'
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise SafetensorsError(f"[safetensors_write] {dtype!r} is not a dtype"[:200]) from None
    for name, t in _NUMPY_DTYPES.items():
        if dt.kind == np.dtype(t).kind and dt.itemsize == np.dtype(t).itemsize:
            return name
    for name, (attr, _raw) in _EXTENDED_DTYPES.items():
        if dt.name == attr:
            return name
    raise SafetensorsError(f"[safetensors_write] dtype {dt} has no safetensors equivalent")


class SafetensorsFile(Mapping[str, np.ndarray]):
    """A safetensors file, memory-mapped; a read-only mapping from tensor names to NumPy views.

    Use :func:`safe_open` to create one. Tensors are read lazily: only the header is parsed on
    open, and :meth:`get` returns a view of the mapped bytes. Views stay valid after
    :meth:`close` (they keep the mapping alive).

    Example:
        >>> import numpy as np, ggquant, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.safetensors")
        >>> ggquant.save_file({"a": np.ones((2, 2), np.float16)}, p)
        >>> with ggquant.safe_open(p) as f:
        ...     f["a"].dtype, f.get_float32("a").dtype, len(f), "a" in f
        (dtype('float16'), dtype('float32'), 1, True)
    """

    def __init__(self, path: PathArg, framework: str = "np") -> None:
        self._path = fs_path(path, "safetensors file")
        pt = _torch_io.framework_of(framework) == "pt"
        self._f: Any = _core._SafetensorsFile(os.fsencode(self._path))
        self._infos = {name: (dtype, shape, begin, end) for name, dtype, shape, begin, end in self._f.tensor_infos()}
        self._keys = sorted(self._infos)
        self._metadata = self._f.metadata()
        self._pt = _torch_io.TorchMap(self._path) if pt else None

    # -- the mapping
    def __getitem__(self, name: str) -> np.ndarray:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, name: object) -> bool:
        return name in self._infos

    def __repr__(self) -> str:
        return f"SafetensorsFile({getattr(self, '_path', '?')!r}, {len(getattr(self, '_keys', ()))} tensors)"

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        """The file's path."""
        return self._path

    def keys(self) -> list[str]:  # type: ignore[override]
        """Tensor names, sorted (as ``safetensors.safe_open.keys()``)."""
        return list(self._keys)

    def metadata(self) -> dict[str, str] | None:
        """The ``__metadata__`` string map, or None when the header has none."""
        return None if self._metadata is None else dict(self._metadata)

    def _info(self, name: str) -> tuple[str, tuple[int, ...], int, int]:
        try:
            return self._infos[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in {self._path!r}") from None

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of tensor ``name``."""
        return self._info(name)[1]

    def dtype(self, name: str) -> str:
        """The safetensors dtype name (``"F32"``, ``"BF16"``, ...) of tensor ``name``."""
        return self._info(name)[0]

    def nbytes(self, name: str) -> int:
        """The byte size of tensor ``name``'s data."""
        _, _, begin, end = self._info(name)
        return end - begin

    def data_offsets(self, name: str) -> tuple[int, int]:
        """The tensor's ``[begin, end)`` offsets relative to the data buffer, as in the header."""
        _, _, begin, end = self._info(name)
        return begin, end

    def _file(self) -> Any:
        if self._f is None:
            raise SafetensorsError(f"[safetensors] {self._path!r} is closed")
        return self._f

    def get_raw(self, name: str) -> np.ndarray:
        """The tensor's bytes as a read-only 1-D ``uint8`` view of the mapped file."""
        self._info(name)
        return self._file().raw(name)

    def get(self, name: str, default: Any = _MISSING) -> np.ndarray:  # type: ignore[override,unused-ignore]
        """Tensor ``name`` as a read-only zero-copy NumPy view with its shape and dtype.

        Args:
            name: the tensor name.
            default: returned when there is no such tensor; without it a KeyError is raised.

        Returns:
            An ndarray view (see the module docstring for BF16/F8/F4/F6).

        Example:
            >>> import numpy as np, ggquant, tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "a.safetensors")
            >>> ggquant.save_file({"a": np.arange(4, dtype=np.int32)}, p)
            >>> ggquant.safe_open(p).get("a")
            array([0, 1, 2, 3], dtype=int32)
        """
        if name not in self._infos:
            if default is _MISSING:
                raise KeyError(f"no tensor named {name!r} in {self._path!r}")
            return default
        st_dtype, shape, begin, end = self._infos[name]
        if self._pt is not None:  # framework="pt": a zero-copy torch tensor
            self._file()
            return self._pt.tensor(st_dtype, shape, begin, end)
        raw = self._file().raw(name)
        if st_dtype in _PACKED_DTYPES:
            return raw
        try:
            return raw.view(numpy_dtype(st_dtype)).reshape(shape)
        except ValueError as e:  # e.g. a zero-size tensor with a dimension past 2^63
            raise SafetensorsError(f"[safetensors_get] tensor {name!r} of shape {shape} is not representable in NumPy: {e}") from None

    def get_float32(self, name: str) -> np.ndarray:
        """Tensor ``name`` converted to a new float32 array (any float, integer or bool dtype).

        BF16 and all F8 types are decoded exactly (no ml_dtypes needed); the packed F4/F6 types
        raise :class:`ggquant.UnsupportedTypeError`.

        Example:
            >>> import numpy as np, ggquant, tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "a.safetensors")
            >>> ggquant.save_file({"a": np.array([1.5, -2], np.float16)}, p)
            >>> ggquant.safe_open(p).get_float32("a")
            array([ 1.5, -2. ], dtype=float32)
        """
        _, shape, _, _ = self._info(name)
        try:
            return self._file().to_float32(name)
        except GGQuantError:
            raise
        except ValueError as e:  # NumPy refused the shape
            raise SafetensorsError(f"[safetensors_get] tensor {name!r} of shape {shape} is not representable in NumPy: {e}") from None

    def close(self) -> None:
        """Drops this object's reference to the mapping (views already returned stay valid)."""
        self._f = None


def safe_open(path: PathArg, framework: str = "np") -> SafetensorsFile:
    """Opens a safetensors file for lazy, zero-copy reading (usable as a context manager).

    Args:
        path: the ``.safetensors`` file.
        framework: ``"np"`` (NumPy arrays, the default) or ``"pt"`` (torch tensors: zero-copy views
            of a private copy-on-write mapping for every dtype torch has, as ``safetensors.torch``
            returns them; F4/F6 as raw ``uint8`` bytes).

    Returns:
        A :class:`SafetensorsFile`.

    Raises:
        SafetensorsError: the file is malformed (the message names the cause).
        GGQuantIOError: the file cannot be opened or mapped.

    Example:
        >>> import numpy as np, ggquant, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.safetensors")
        >>> ggquant.save_file({"b": np.zeros(3, np.uint8)}, p)
        >>> with ggquant.safe_open(p) as f:
        ...     f.keys()
        ['b']
    """
    return SafetensorsFile(path, framework)


def _as_saveable(name: Any, value: Any) -> np.ndarray:
    if not isinstance(name, str):
        raise SafetensorsError(f"[safetensors_write] tensor names must be str, got {type(name).__name__}")
    if not isinstance(value, np.ndarray):
        raise SafetensorsError(f"[safetensors_write] tensor {name!r} is a {type(value).__name__}, not a numpy.ndarray")
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))
    return value


def _bytes_view(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.reshape(-1).view(np.uint8)


class SafetensorsWriter:
    """Streaming safetensors writer: declare names, dtypes and shapes first, then write tensors one at a time.

    The header is written at once from the declarations; tensor data follows in the reference
    layout order (:attr:`order`). Tensors written in that order go straight to the file, so a
    converter never holds more than one tensor; a tensor written early is held (by reference)
    until its turn. Nothing exists under ``path`` until :meth:`commit` (done by ``with`` on a clean
    exit); on error or :meth:`abort` the temporary file is deleted.

    Args:
        path: output file.
        tensors: mapping of name to ``(dtype, shape)``; dtype is a safetensors name (``"BF16"``)
            or a NumPy dtype.
        metadata: optional ``__metadata__`` string map (written in insertion order).

    Example:
        >>> import numpy as np, ggquant, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "s.safetensors")
        >>> with ggquant.SafetensorsWriter(p, {"x": ("F32", (2,)), "y": ("U8", (3,))}) as w:
        ...     for name in w.order:
        ...         w.write(name, np.zeros(2, np.float32) if name == "x" else np.ones(3, np.uint8))
        >>> ggquant.safe_open(p).keys()
        ['x', 'y']
    """

    def __init__(
        self,
        path: PathArg,
        tensors: Mapping[str, tuple[Any, Iterable[int]]],
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        specs = []
        self._dtypes: dict[str, str] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        if not isinstance(tensors, Mapping):
            raise SafetensorsError(f"[safetensors_write] expected a mapping of name -> (dtype, shape), got {type(tensors).__name__}")
        for name, spec in tensors.items():
            if not isinstance(name, str):
                raise SafetensorsError(f"[safetensors_write] tensor names must be str, got {type(name).__name__}")
            if not isinstance(spec, tuple) or len(spec) != 2:
                raise SafetensorsError(f"[safetensors_write] tensor {name!r}: expected (dtype, shape), got {spec!r}"[:200])
            dtype, shape = spec
            st = dtype if isinstance(dtype, str) and dtype in ALL_DTYPES else safetensors_dtype(dtype)
            try:
                shp = shape_arg(shape)
            except ShapeError as e:
                raise SafetensorsError(f"[safetensors_write] tensor {name!r}: {e}") from None
            self._dtypes[name] = st
            self._shapes[name] = shp
            specs.append((name, st, list(shp)))
        if metadata is not None and (
            not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            raise SafetensorsError("[safetensors_write] metadata keys and values must be str (a mapping of str to str)")
        md = None if metadata is None else dict(metadata)
        self._path = fs_path(path, "safetensors output")
        remove_stale_temporaries(self._path)  # left by a writer that was killed
        self._w: Any = _core._SafetensorsWriter(os.fsencode(self._path), specs, md)
        self._order: list[str] = self._w.order()
        self._pending: dict[str, np.ndarray] = {}
        self._index = {name: i for i, name in enumerate(self._dtypes)}  # name -> declaration index
        self._done = False

    @property
    def order(self) -> list[str]:
        """Tensor names in the order their data is laid out (write them in this order to stream)."""
        return list(self._order)

    @property
    def path(self) -> str:
        return self._path

    def write(self, name: str, array: np.ndarray) -> None:
        """Supplies tensor ``name``'s data; dtype and shape must match the declaration.

        Example:
            See :class:`SafetensorsWriter`.
        """
        if name not in self._dtypes:
            raise SafetensorsError(f"[safetensors_write] tensor {name!r} was not declared")
        array = _as_saveable(name, array)
        st = self._dtypes[name]
        if st in _PACKED_DTYPES:
            ok = array.dtype == np.uint8  # the packed bytes; their count is checked on write
        else:
            ok = array.dtype == numpy_dtype(st) or (st in _EXTENDED_DTYPES and array.dtype == _EXTENDED_DTYPES[st][1])
            if ok and tuple(array.shape) != self._shapes[name]:
                raise SafetensorsError(
                    f"[safetensors_write] tensor {name!r} has shape {array.shape}, declared {self._shapes[name]}"
                )
        if not ok:
            raise SafetensorsError(f"[safetensors_write] tensor {name!r} is {array.dtype}, declared {st}")
        nxt = self._order[self._w.n_written] if self._w.n_written < len(self._order) else None
        if name != nxt:
            if name in self._pending or self._order.index(name) < self._w.n_written:
                raise SafetensorsError(f"[safetensors_write] tensor {name!r} was already written")
            self._pending[name] = array
            self._w.release_tensor(self._index[name])  # filled in place, its pages can go now (else a no-op)
            return
        self._w.write_tensor(name, _bytes_view(array))
        while self._w.n_written < len(self._order) and self._order[self._w.n_written] in self._pending:
            nxt = self._order[self._w.n_written]
            self._w.write_tensor(nxt, _bytes_view(self._pending.pop(nxt)))

    def tensor_buffer(self, name: str) -> np.ndarray | None:
        """Tensor ``name``'s place in the output file: a writable ``uint8`` array of its byte size (view
        it as the declared dtype and shape), to be filled in place and then passed to :meth:`write`
        (as that view), which then copies nothing, in any order. The first call preallocates and maps
        the whole file. None where the file system cannot preallocate (then write your own array).
        Fill a tensor's array only before its :meth:`write`.

        Raises:
            SafetensorsError: ``name`` was not declared.
            GGQuantIOError: the disk has no room for the file.

        Example:
            >>> import numpy as np, ggquant, tempfile, os
            >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors")
            >>> with ggquant.SafetensorsWriter(p, {"x": ("F32", (2, 3))}) as w:
            ...     buf = w.tensor_buffer("x")
            ...     x = np.empty((2, 3), np.float32) if buf is None else buf.view(np.float32).reshape(2, 3)
            ...     x[:] = 1.5  # a kernel would write it here
            ...     w.write("x", x)
            >>> float(ggquant.safe_open(p)["x"].sum())
            9.0
        """
        if name not in self._dtypes:
            raise SafetensorsError(f"[safetensors_write] tensor {name!r} was not declared")
        try:
            buf: np.ndarray | None = self._w.tensor_buffer(self._index[name])
        except GGQuantError:
            self.abort()
            raise
        return buf

    def commit(self) -> None:
        """Finishes the file and renames it into place (fails if a tensor is missing)."""
        self._w.commit()
        self._done = True

    def abort(self) -> None:
        """Deletes the temporary file; nothing is written under ``path``."""
        self._w.abort()
        self._done = True

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def save_file(tensors: Mapping[str, np.ndarray], path: PathArg, metadata: Mapping[str, str] | None = None) -> None:
    """Writes a dict of NumPy arrays as a safetensors file, byte-identical to ``safetensors.numpy.save_file``.

    Identity holds for any dict order and whenever ``metadata`` has at most one key (the reference
    writes a multi-key metadata map in hash order; ggquant keeps insertion order). Big-endian
    arrays are stored little-endian, non-contiguous ones are copied one at a time. The write is
    atomic (temporary file + rename).

    Args:
        tensors: name -> ndarray (NumPy dtypes, or ml_dtypes bfloat16/float8 types), or torch
            tensors (contiguous, not sharing memory; written as ``safetensors.torch.save_file`` does).
        path: output file.
        metadata: optional ``__metadata__`` string map.

    Example:
        >>> import numpy as np, ggquant, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> ggquant.save_file({"w": np.eye(2, dtype=np.float32)}, p)
        >>> os.path.getsize(p)
        88
    """
    if not isinstance(tensors, Mapping):
        raise SafetensorsError(f"[safetensors_write] expected a dict of name -> ndarray, got {type(tensors).__name__}")
    _torch_io.check_not_shared(dict(tensors))
    specs: dict[str, tuple[Any, tuple[int, ...]]] = {}
    arrays = {}
    for name, v in tensors.items():
        if _torch_io.is_torch_tensor(v):  # torch: the bytes safetensors.torch.save_file writes
            st, arr = _torch_io.saveable(name, v)
            specs[name], arrays[name] = (st, tuple(v.shape)), arr
        else:
            arrays[name] = _as_saveable(name, v)
            specs[name] = (arrays[name].dtype, arrays[name].shape)
    with SafetensorsWriter(path, specs, metadata) as w:
        for name in w.order:
            w.write(name, arrays[name])


def load_file(path: PathArg) -> dict[str, np.ndarray]:
    """Reads every tensor of a safetensors file into a dict of zero-copy read-only views.

    Example:
        >>> import numpy as np, ggquant, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> ggquant.save_file({"w": np.ones(2, np.int64)}, p)
        >>> ggquant.load_file(p)["w"]
        array([1, 1])
    """
    f = SafetensorsFile(path)
    return {name: f.get(name) for name in f.keys()}


# ---- sharded checkpoints


def _strict_json(text: str, what: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k, v in pairs:
            if k in d:
                raise SafetensorsError(f"[safetensors_index] duplicate key {k!r} in {what}")
            d[k] = v
        return d

    def no_constant(c: str) -> Any:
        raise SafetensorsError(f"[safetensors_index] {c} is not valid JSON in {what}")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except json.JSONDecodeError as e:
        raise SafetensorsError(f"[safetensors_index] {what} is not valid JSON: {e}") from None
    except RecursionError:
        raise SafetensorsError(f"[safetensors_index] {what} nests too deeply") from None
    except ValueError as e:  # an integer of more digits than int() accepts
        raise SafetensorsError(f"[safetensors_index] {what}: {e}") from None


def _safe_shard_name(name: Any, index_path: str) -> str:
    if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in re.split(r"[\\/]", name):
        raise SafetensorsError(f"[safetensors_index] {index_path}: shard file name {name!r} must be a relative path inside the folder")
    return name


class SafetensorsCheckpoint(Mapping[str, np.ndarray]):
    """A checkpoint of one or more safetensors files read as one lazy, read-only mapping.

    Create with :func:`load_checkpoint`. ``ckpt[name]`` is a zero-copy view from the shard that
    holds it; :meth:`get_float32`, :meth:`shape` and :meth:`dtype` work as on
    :class:`SafetensorsFile`.

    Example:
        >>> import numpy as np, ggquant, tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = ggquant.save_sharded({"a": np.zeros(300, np.uint8), "b": np.ones(300, np.uint8)}, d, max_shard_size=400)
        >>> ck = ggquant.load_checkpoint(d)
        >>> sorted(ck), len(ck.files), int(ck["b"][0])
        (['a', 'b'], 2, 1)
    """

    def __init__(self, files: dict[str, SafetensorsFile], where: dict[str, str], metadata: dict[str, Any] | None) -> None:
        self.files = files
        self._where = where
        self._keys = sorted(where)
        self._metadata = metadata

    def _file_of(self, name: str) -> SafetensorsFile:
        try:
            return self.files[self._where[name]]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in the checkpoint") from None

    def __getitem__(self, name: str) -> np.ndarray:
        return self._file_of(name).get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def keys(self) -> list[str]:  # type: ignore[override]
        """All tensor names, sorted."""
        return list(self._keys)

    def metadata(self) -> dict[str, Any] | None:
        """The index's ``metadata`` object, or for a single file its ``__metadata__``."""
        return None if self._metadata is None else dict(self._metadata)

    def shard_of(self, name: str) -> str:
        """The file name (relative to the checkpoint folder) holding tensor ``name``."""
        self._file_of(name)
        return self._where[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._file_of(name).shape(name)

    def dtype(self, name: str) -> str:
        return self._file_of(name).dtype(name)

    def get_float32(self, name: str) -> np.ndarray:
        return self._file_of(name).get_float32(name)

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def __enter__(self) -> SafetensorsCheckpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_checkpoint(path: PathArg) -> SafetensorsCheckpoint:
    """Opens a (possibly sharded) safetensors checkpoint as one lazy mapping.

    Args:
        path: a folder holding ``model.safetensors.index.json`` (or a single
            ``model.safetensors``, or exactly one ``*.safetensors`` file), the index file itself,
            or one ``.safetensors`` file.

    Returns:
        A :class:`SafetensorsCheckpoint`. Every shard is opened and validated; the index's
        ``weight_map`` must name exactly the tensors the shards hold, each in the shard it names.

    Raises:
        SafetensorsError: a malformed index or shard, or a weight_map that disagrees with the shards.

    Example:
        >>> import numpy as np, ggquant, tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = ggquant.save_sharded({"w": np.ones(4, np.float32)}, d)
        >>> ggquant.load_checkpoint(d)["w"].sum()
        np.float32(4.0)
    """
    p = fs_path(path, "checkpoint")
    if os.path.isdir(p):
        if os.path.exists(os.path.join(p, INDEX_NAME)):
            p = os.path.join(p, INDEX_NAME)
        elif os.path.exists(os.path.join(p, SINGLE_NAME)):
            p = os.path.join(p, SINGLE_NAME)
        else:
            found = sorted(n for n in os.listdir(p) if n.endswith(".safetensors"))
            if len(found) != 1:
                raise SafetensorsError(
                    f"[safetensors_index] {p}: no {INDEX_NAME} or {SINGLE_NAME}, and {len(found)} .safetensors files"
                )
            p = os.path.join(p, found[0])
    if not p.endswith(".json"):
        f = SafetensorsFile(p)
        name = os.path.basename(p)
        return SafetensorsCheckpoint({name: f}, {k: name for k in f.keys()}, f.metadata())

    raw = read_regular_file(p, "checkpoint index", max_bytes=1 << 30)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError(f"[safetensors_index] {p} is not valid UTF-8: {e}") from None
    index = _strict_json(text, p)
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        raise SafetensorsError(f"[safetensors_index] {p}: expected an object with a 'weight_map' object")
    metadata = index.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise SafetensorsError(f"[safetensors_index] {p}: 'metadata' must be an object")
    where: dict[str, str] = {}
    for name, shard in index["weight_map"].items():
        where[name] = _safe_shard_name(shard, p)
    folder = os.path.dirname(p)
    files: dict[str, SafetensorsFile] = {}
    for shard in sorted(set(where.values())):
        files[shard] = SafetensorsFile(os.path.join(folder, shard))
    claimed: dict[str, set[str]] = {s: set() for s in files}
    for name, shard in where.items():
        claimed[shard].add(name)
    for shard, f in files.items():
        have = set(f.keys())
        if have != claimed[shard]:
            missing = sorted(claimed[shard] - have)
            extra = sorted(have - claimed[shard])
            detail = []
            if missing:
                detail.append(f"weight_map names {missing[:5]} that the shard does not hold")
            if extra:
                detail.append(f"the shard holds {extra[:5]} that weight_map does not map to it")
            raise SafetensorsError(f"[safetensors_index] {p}: {shard}: " + "; ".join(detail))
    return SafetensorsCheckpoint(files, where, metadata)


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(size: int | str) -> int:
    """A byte count from an int or a string such as ``"5GB"`` (10^9) or ``"500MiB"`` (2^20).

    Example:
        >>> from ggquant.safetensors import parse_size
        >>> parse_size("2GB"), parse_size("1KiB"), parse_size(10)
        (2000000000, 1024, 10)
    """
    if isinstance(size, int):
        if size <= 0:
            raise SafetensorsError(f"[safetensors_write] shard size must be positive, got {size}")
        return size
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(size))
    if not m or m.group(2).upper() not in _SIZE_UNITS:
        raise SafetensorsError(f"[safetensors_write] cannot read the size {size!r} (try 5GB or 500MiB)")
    n = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])
    if n <= 0:
        raise SafetensorsError(f"[safetensors_write] shard size must be positive, got {size!r}")
    return n


def save_sharded(
    tensors: Mapping[str, np.ndarray],
    directory: PathArg,
    max_shard_size: int | str = "5GB",
    metadata: Mapping[str, str] | None = None,
) -> list[str]:
    """Writes a checkpoint as ``model-0000i-of-0000N.safetensors`` shards plus ``model.safetensors.index.json``.

    Tensors are packed into shards in dict order, a new shard starting when the next tensor would
    push the current one past ``max_shard_size`` (a tensor larger than that gets a shard of its
    own), as transformers does. A checkpoint that fits one shard is written as a single
    ``model.safetensors`` without an index, again as transformers does. The index holds
    ``{"metadata": {"total_size": <tensor bytes>}, "weight_map": {name: shard}}``. The set is
    written atomically: all shards go to temporary files, are renamed into place only when all are
    complete, and the index is renamed last; on failure no new file is left behind.

    Args:
        tensors: name -> ndarray.
        directory: output folder (created if missing).
        max_shard_size: bytes per shard, an int or a string like ``"5GB"``.
        metadata: ``__metadata__`` for every shard.

    Returns:
        The written file names (shards, then the index if any).

    Example:
        >>> import numpy as np, ggquant, tempfile
        >>> d = tempfile.mkdtemp()
        >>> ggquant.save_sharded({"a": np.zeros(10, np.uint8), "b": np.zeros(10, np.uint8)}, d, max_shard_size=15)
        ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']
    """
    if not isinstance(tensors, Mapping):
        raise SafetensorsError(f"[safetensors_write] expected a dict of name -> ndarray, got {type(tensors).__name__}")
    limit = parse_size(max_shard_size)
    arrays = {name: _as_saveable(name, v) for name, v in tensors.items()}
    shards: list[list[str]] = [[]]
    size = 0
    for name, a in arrays.items():
        if shards[-1] and size + a.nbytes > limit:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += a.nbytes
    folder = fs_path(directory, "checkpoint folder")
    created = not os.path.lexists(folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise GGQuantIOError(f"[safetensors_write] cannot create the folder {folder!r}: {e.strerror or e}") from None
    n = len(shards)
    names = [SINGLE_NAME] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]

    writers: list[SafetensorsWriter] = []
    renamed: list[str] = []
    index_tmp = None
    try:
        for shard, fname in zip(shards, names):
            w = SafetensorsWriter(os.path.join(folder, fname), {k: (arrays[k].dtype, arrays[k].shape) for k in shard}, metadata)
            writers.append(w)
            for k in w.order:
                w.write(k, arrays[k])
        written = list(names)
        if n > 1:
            index = {
                "metadata": {"total_size": sum(a.nbytes for a in arrays.values())},
                "weight_map": {k: fname for shard, fname in zip(shards, names) for k in shard},
            }
            index_path = os.path.join(folder, INDEX_NAME)
            remove_stale_temporaries(index_path)
            index_tmp = f"{index_path}.tmp-{os.getpid()}-0"  # named as the C++ writers name theirs
            with open(index_tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
            written.append(INDEX_NAME)
        for w in writers:
            w.commit()
            renamed.append(w.path)
        if index_tmp is not None:
            os.replace(index_tmp, os.path.join(folder, INDEX_NAME))
            index_tmp = None
    except BaseException as e:
        for w in writers:
            if not w._done:
                w.abort()
        for path in renamed:
            try:
                os.remove(path)
            except OSError:
                pass
        if index_tmp is not None and os.path.exists(index_tmp):
            os.remove(index_tmp)
        if created:  # leave no empty folder behind either (e.g. on a full disk)
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, OSError):
            raise GGQuantIOError(f"[safetensors_write] cannot write {folder!r}: {e.strerror or e}") from e
        raise
    return written


__all__ = [
    "ALL_DTYPES",
    "INDEX_NAME",
    "SafetensorsCheckpoint",
    "SafetensorsFile",
    "SafetensorsWriter",
    "load_checkpoint",
    "load_file",
    "numpy_dtype",
    "parse_size",
    "safe_open",
    "safetensors_dtype",
    "save_file",
    "save_sharded",
]
