"""The one checkpoint reader of the converters: lazy access to the tensors of a model, whatever holds them.

A :class:`Checkpoint` maps tensor names to shape, dtype (safetensors names: ``"F32"``, ``"BF16"``,
``"F8_E4M3"``, ...), where the tensor comes from (for error messages) and how to read it. Nothing is
read until a tensor is asked for. Sources:

- safetensors files (single or sharded with ``model.safetensors.index.json``), validated by
  :mod:`ggquant.safetensors` (strict header, offsets, index); each tensor is then read through its
  own memory map, so the pages of a tensor already converted can be released;
- PyTorch ``pytorch_model*.bin`` files (``torch.load(weights_only=True, mmap=True)``);
- an in-memory state dict of NumPy arrays or torch tensors;
- anything else, entry by entry with :meth:`Checkpoint.add` (e.g. the tensors of a GGUF file).

The dtype rules of the converters live here too: :func:`to_compute_dtype` (what the quantizers take)
and :func:`cast_float` (F32/F16/BF16 conversion with round-to-nearest-even, BF16 through the C++ core).
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, GGQuantError
from ..fileio import check_size_unchanged, read_text_file
from ..qtypes import GGMLType
from ..quants import quantize
from ..safetensors import SafetensorsFile, load_checkpoint, numpy_dtype, safe_open

#: dtypes the quantizers read as they are stored (BF16 as its uint16 bits, widened chunk by chunk)
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
#: FP8 dtypes: decoded to float32 by the reader that holds them (exactly: C++ core, torch or ml_dtypes)
FP8_DTYPES = ("F8_E4M3", "F8_E5M2")

_TORCH_DTYPES = {"torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16", "torch.float64": "F64",
                 "torch.float8_e4m3fn": "F8_E4M3", "torch.float8_e5m2": "F8_E5M2"}
_NUMPY_KINDS = {"float32": "F32", "float16": "F16", "float64": "F64", "bfloat16": "BF16",
                "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}


def to_compute_dtype(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values -> what the quantizers take: float32, or float16 for F16 (as convert_hf_to_gguf.py keeps it).

    Args:
        raw: the stored values (BF16 as uint16 bits).
        dtype: their safetensors dtype name.

    Returns:
        A float32 (or float16) array of the same shape; F32 and F16 input is returned as it is.

    Example:
        >>> import numpy as np
        >>> to_compute_dtype(np.array([0x3F80], np.uint16), "BF16")
        array([1.], dtype=float32)
    """
    if dtype in ("F32", "F16"):
        return raw
    if dtype == "BF16":
        x = raw.astype(np.uint32)
        x <<= 16
        return x.view(np.float32)
    if dtype == "F64":
        return raw.astype(np.float32)
    raise GGQuantError(f"dtype {dtype} is not a floating-point type the converters read")


def cast_float(arr: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Convert a float tensor between F32, F16 and BF16 with round-to-nearest-even (MLX's ``astype``).

    BF16 travels as raw uint16 bits on both sides; NaN becomes MLX's canonical 0x7FC0.

    Args:
        arr: the values, stored as ``src`` (BF16: uint16 bits).
        src, dst: ``"F32"``, ``"F16"`` or ``"BF16"`` (``src`` may also be ``"F64"``).

    Returns:
        The values stored as ``dst``.

    Example:
        >>> import numpy as np
        >>> cast_float(np.array([1.0, 1.00390625], np.float32), "F32", "BF16")
        array([16256, 16256], dtype=uint16)
    """
    if src == dst:
        return arr
    f32 = to_compute_dtype(np.asarray(arr), src)
    if dst == "F32":
        return f32.astype(np.float32, copy=False)
    if dst == "F16":
        with np.errstate(over="ignore"):
            return f32.astype(np.float16)
    if dst != "BF16":
        raise GGQuantError(f"cannot convert {src} to {dst}: expected F32, F16 or BF16")
    if f32.size == 0:
        return np.zeros(f32.shape, np.uint16)
    rows = np.ascontiguousarray(f32, dtype=np.float32).reshape(-1, f32.shape[-1] if f32.ndim else 1)
    bits = quantize(rows, GGMLType.BF16, allow_nonfinite=True).view(np.uint16).reshape(f32.shape)
    bits[np.isnan(f32)] = 0x7FC0  # ggml keeps a NaN's sign and payload, MLX writes one NaN
    return bits


@dataclass
class _Entry:
    shape: tuple[int, ...]
    dtype: str
    stored: Callable[[], np.ndarray]  # the stored values, zero-copy where possible (BF16/F8 as uint bits)
    origin: str
    decode: Callable[[], np.ndarray] | None = None  # float32 values of an FP8 tensor


@dataclass
class Checkpoint:
    """name -> (shape, dtype, origin, reader) for every tensor of a checkpoint, in file order.

    Example:
        >>> import numpy as np
        >>> ck = from_state_dict({"w": np.ones((2, 4), np.float16)})
        >>> ck.names(), ck.shape("w"), ck.dtype("w"), ck.get("w").dtype
        (['w'], (2, 4), 'F16', dtype('float16'))
    """

    _entries: dict[str, _Entry] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _mapped: dict[str, int] = field(default_factory=dict)  # memory-mapped file -> its size when opened

    def check_sizes(self) -> None:
        """Raise GGQuantIOError if a memory-mapped file shrank since it was opened (reading it would be SIGBUS)."""
        for path, size in self._mapped.items():
            check_size_unchanged(path, size, "safetensors file")

    def add(self, name: str, shape: Iterable[int], dtype: str, stored: Callable[[], np.ndarray], origin: str,
            decode: Callable[[], np.ndarray] | None = None) -> None:
        """Register a tensor: ``stored()`` returns its stored values, ``decode()`` (FP8 only) its float32 values."""
        if name in self._entries:
            raise FormatError(f"{origin}: tensor {name!r} also appears in {self._entries[name].origin}")
        self._entries[name] = _Entry(tuple(int(s) for s in shape), dtype, stored, origin, decode)

    def replace(self, name: str, dtype: str, stored: Callable[[], np.ndarray]) -> None:
        """Give tensor ``name`` another reader (same shape), e.g. dequantized values."""
        e = self._entries[name]
        self._entries[name] = _Entry(e.shape, dtype, stored, e.origin)

    def remove(self, name: str) -> None:
        del self._entries[name]

    def on_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the checkpoint is closed."""
        self._closers.append(fn)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name].shape

    def dtype(self, name: str) -> str:
        return self._entries[name].dtype

    def origin(self, name: str) -> str:
        return self._entries[name].origin

    def stored(self, name: str) -> np.ndarray:
        """The stored values of any dtype (BF16 as uint16 bits, FP8 as uint8), read lazily."""
        e = self._entries[name]
        try:
            return e.stored().reshape(e.shape) if e.dtype not in ("F4", "F6_E2M3", "F6_E3M2") else e.stored()
        except GGQuantError:
            raise
        except Exception as err:
            raise FormatError(f"{e.origin}: cannot read tensor {name!r}: {err}") from err

    def get_raw(self, name: str) -> tuple[np.ndarray, str]:
        """A floating-point tensor as the quantizers read it: ``(values, dtype)``, BF16 as uint16 bits,
        FP8 decoded to float32 (dtype ``"F32"``)."""
        return self.reader(name)()

    def reader(self, name: str) -> Callable[[], tuple[np.ndarray, str]]:
        """:meth:`get_raw` of the tensor as registered now (it stays valid if the entry is replaced later)."""
        e = self._entries[name]

        def read() -> tuple[np.ndarray, str]:
            if e.dtype not in FLOAT_DTYPES and not (e.dtype in FP8_DTYPES and e.decode is not None):
                raise GGQuantError(f"{e.origin}: tensor {name!r} has dtype {e.dtype}, not a floating-point type")
            try:
                if e.dtype in FLOAT_DTYPES:
                    return e.stored().reshape(e.shape), e.dtype
                return e.decode().reshape(e.shape), "F32"  # type: ignore[misc]
            except GGQuantError:
                raise
            except Exception as err:
                raise FormatError(f"{e.origin}: cannot read tensor {name!r}: {err}") from err

        return read

    def get(self, name: str) -> np.ndarray:
        """The tensor as float32 (or float16 when stored as F16), reading it now."""
        return to_compute_dtype(*self.get_raw(name))

    def close(self) -> None:
        for c in self._closers:
            c()
        self._closers.clear()


# ---------------------------------------------------------------------------------------------
# safetensors, through ggquant.safetensors


def _storage_dtype(st_dtype: str) -> np.dtype:
    # ml_dtypes types (BF16, F8) travel as the unsigned integers of their bits
    d = numpy_dtype(st_dtype)
    return d if d.kind in "biufc" else np.dtype(f"u{d.itemsize}")


def _add_safetensors_file(ck: Checkpoint, f: SafetensorsFile) -> None:
    path, size = f.path, os.path.getsize(f.path)
    ck._mapped[path] = size
    with open(path, "rb") as fh:  # the strict reader has validated the header; the data follow it
        data_start = 8 + int.from_bytes(fh.read(8), "little")
    rows = sorted(((f.data_offsets(n), n) for n in f.keys()))  # file order
    for (begin, end), name in rows:
        dtype, shape = f.dtype(name), f.shape(name)
        npdt = _storage_dtype(dtype)
        packed = dtype in ("F4", "F6_E2M3", "F6_E3M2")
        mshape = (end - begin,) if packed else shape

        def stored(begin: int = begin, end: int = end, npdt: np.dtype = npdt, mshape: tuple[int, ...] = mshape) -> np.ndarray:
            # one mapping per tensor, released with the array: resident pages stay bounded by the tensors in use
            if end == begin:
                return np.zeros(mshape, npdt)
            check_size_unchanged(path, size, "safetensors file")  # shrunk since opened: an error, not SIGBUS
            return np.memmap(path, dtype=npdt, mode="r", offset=data_start + begin, shape=mshape)

        decode = partial(_decode_float32, path, name) if dtype in FP8_DTYPES else None
        ck.add(name, shape, dtype, stored, path, decode)


def _decode_float32(path: str, name: str) -> np.ndarray:
    # the C++ reader's exact FP8 decoding, on a mapping opened only for this tensor
    with safe_open(path) as f:
        return f.get_float32(name)


def _culprit(d: Path) -> Path:
    # the shard a checkpoint error comes from (the reader's messages do not always name the file)
    for p in sorted(d.glob("*.safetensors")):
        try:
            safe_open(p).close()
        except GGQuantError:
            return p
    return d


def _open_safetensors(ck: Checkpoint, d: Path) -> None:
    try:
        st = load_checkpoint(d)
    except GGQuantError as e:
        raise type(e)(str(e) if str(d) in str(e) else f"{_culprit(d)}: {e}") from None
    try:
        for f in st.files.values():
            _add_safetensors_file(ck, f)
    finally:  # tensors are read through mappings of their own, released tensor by tensor
        st.close()


# ---------------------------------------------------------------------------------------------
# PyTorch .bin and state dicts


def _torch_dtype(t: Any) -> str:
    return _TORCH_DTYPES.get(str(t.dtype), str(t.dtype).replace("torch.", "").upper())


def _torch_stored(t: Any) -> np.ndarray:
    import torch

    t = t.detach().cpu().contiguous()
    dt = _torch_dtype(t)
    if dt == "BF16":
        return np.asarray(t.view(torch.int16).numpy()).view(np.uint16)
    if dt in FP8_DTYPES:
        return np.asarray(t.view(torch.uint8).numpy())
    return np.asarray(t.numpy())


def _torch_float32(t: Any) -> np.ndarray:
    return np.asarray(t.detach().cpu().float().numpy())


def _add_torch_tensor(ck: Checkpoint, name: str, t: Any, origin: str) -> None:
    dt = _torch_dtype(t)
    decode = partial(_torch_float32, t) if dt in FP8_DTYPES else None
    ck.add(name, tuple(t.shape), dt, partial(_torch_stored, t), origin, decode)


def _add_torch_file(ck: Checkpoint, path: Path) -> None:
    try:
        import torch
    except ImportError as e:
        raise GGQuantError(f"{path}: reading pytorch_model*.bin needs PyTorch (pip install torch)") from e
    try:
        sd = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    except Exception as e:
        raise FormatError(f"{path}: cannot load PyTorch checkpoint: {e}") from e
    for name, t in sd.items():
        if hasattr(t, "dtype"):
            _add_torch_tensor(ck, name, t, str(path))


def _open_torch(ck: Checkpoint, d: Path) -> None:
    parts = sorted(p.name for p in d.iterdir() if p.name.startswith("pytorch_model") and p.name.endswith(".bin"))
    index_file = d / "pytorch_model.bin.index.json"
    weight_map: dict[str, str] = {}
    if index_file.is_file():
        try:
            weight_map = json.loads(read_text_file(index_file, "checkpoint index"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise FormatError(f"{index_file}: cannot read 'weight_map': {e}") from e
        parts = sorted(set(weight_map.values()))
    for p in parts:
        if not (d / p).is_file():
            raise FormatError(f"{index_file}: lists {p}, which is missing")
        _add_torch_file(ck, d / p)
    if weight_map and set(ck.names()) != set(weight_map):
        got, want = set(ck.names()), set(weight_map)
        raise FormatError(f"{index_file}: weight_map and shards disagree; missing tensors: {sorted(want - got)[:5]}, "
                          f"extra tensors: {sorted(got - want)[:5]}")


def open_checkpoint(model_dir: str | os.PathLike[str]) -> Checkpoint:
    """Index the weight files of a Hugging Face model directory (safetensors preferred, else ``.bin``).

    Args:
        model_dir: the directory.

    Returns:
        A :class:`Checkpoint` (close it when done).

    Raises:
        GGQuantError: not a directory, no weight files, or a malformed file or index (the message names it).

    Example:
        >>> ck = open_checkpoint("path/to/model")  # doctest: +SKIP
    """
    d = Path(model_dir)
    if not d.is_dir():
        raise GGQuantError(f"{d}: not a directory (expected a Hugging Face model directory with config.json)")
    names = [p.name for p in d.iterdir()]
    ck = Checkpoint()
    if "model.safetensors.index.json" in names or any(n.endswith(".safetensors") for n in names):
        _open_safetensors(ck, d)
    elif any(n.startswith("pytorch_model") and n.endswith(".bin") for n in names):
        _open_torch(ck, d)
    else:
        raise GGQuantError(f"{d}: no model*.safetensors or pytorch_model*.bin files found")
    return ck


def from_state_dict(state_dict: Mapping[str, Any]) -> Checkpoint:
    """Wrap a dict of NumPy arrays (``ml_dtypes`` bfloat16/float8 included) or torch tensors.

    Example:
        >>> import numpy as np
        >>> from_state_dict({"b": np.zeros(3, np.float32)}).dtype("b")
        'F32'
    """
    ck = Checkpoint()
    for name, t in state_dict.items():
        if type(t).__module__.startswith("torch"):
            _add_torch_tensor(ck, name, t, "<state dict>")
            continue
        a = np.asarray(t)
        kind = _NUMPY_KINDS.get(a.dtype.name, a.dtype.name.upper())
        stored = a.view(np.dtype(f"u{a.dtype.itemsize}")) if kind in ("BF16", *FP8_DTYPES) else a
        decode = partial(a.astype, np.float32) if kind in FP8_DTYPES else None
        ck.add(name, a.shape, kind, partial(np.asarray, stored), "<state dict>", decode)
    return ck


def release_pages(a: np.ndarray) -> None:
    """Drop the file-backed pages of a memory-mapped array already read (read-only mapping: they are
    simply re-read if needed), so resident memory stays bounded by the tensors in use."""
    b: Any = a
    while b is not None:
        mm = getattr(b, "_mmap", None)
        if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError):
                pass
            return
        b = getattr(b, "base", None)


def dequantize_fp8_blocks(ck: Checkpoint, block_size: list[int] | None) -> int:
    """Replace FP8 weights that have a ``*_scale_inv`` companion by their float32 values
    (``weight * scale_inv`` per block of ``block_size``, as convert_hf_to_gguf.py's ``fp8`` path).

    Returns:
        How many weights were dequantized.
    """
    n = 0
    for name in [k for k in ck.names() if k.endswith("_scale_inv")]:
        wname = name[: -len("_scale_inv")]
        if wname not in ck:
            raise FormatError(f"{ck.origin(name)}: {name} has no weight {wname}")
        wshape = ck.shape(wname)
        w_read, s_read = ck.reader(wname), ck.reader(name)

        def load(w_read: Callable[[], tuple[np.ndarray, str]] = w_read, s_read: Callable[[], tuple[np.ndarray, str]] = s_read,
                 wshape: tuple[int, ...] = wshape) -> np.ndarray:
            w = to_compute_dtype(*w_read()).astype(np.float32, copy=False).reshape(wshape)
            sc = to_compute_dtype(*s_read()).astype(np.float32, copy=False)
            if block_size:
                off = sc.ndim - len(block_size)
                for i, b in enumerate(block_size):
                    sc = np.repeat(sc, int(b), axis=off + i)
                sc = sc[tuple(slice(0, d) for d in wshape)]
            while sc.ndim < w.ndim:
                sc = sc[..., None]
            return w * sc

        ck.replace(wname, "F32", load)
        ck.remove(name)
        n += 1
    for name in [k for k in ck.names() if k.endswith((".activation_scale", "_activation_scale", ".input_scale"))]:
        ck.remove(name)
    return n


__all__ = ["FLOAT_DTYPES", "FP8_DTYPES", "Checkpoint", "cast_float", "dequantize_fp8_blocks", "from_state_dict",
           "open_checkpoint", "release_pages", "to_compute_dtype"]
