"""Lazy access to the tensors of a Hugging Face checkpoint: safetensors (single or sharded), PyTorch
``pytorch_model*.bin``, or an in-memory state dict. Nothing is read until a tensor is asked for."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, GGQuantError, SafetensorsError

# safetensors dtype name -> numpy storage dtype
_ST_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"), "F8_E4M3": np.dtype("u1"), "F8_E5M2": np.dtype("u1"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


def _f8_table(exp_bits: int, man_bits: int, fn: bool) -> np.ndarray:
    """float32 value of every byte of an FP8 format (E4M3FN when fn, else IEEE-like E5M2)."""
    bias = (1 << (exp_bits - 1)) - 1
    out = np.empty(256, np.float32)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e = (b >> man_bits) & ((1 << exp_bits) - 1)
        m = b & ((1 << man_bits) - 1)
        if fn and e == (1 << exp_bits) - 1 and m == (1 << man_bits) - 1:
            out[b] = np.nan
        elif not fn and e == (1 << exp_bits) - 1:
            out[b] = s * np.inf if m == 0 else np.nan
        elif e == 0:
            out[b] = s * m * 2.0 ** (1 - bias - man_bits)
        else:
            out[b] = s * (1 + m / (1 << man_bits)) * 2.0 ** (e - bias)
    return out


_F8_TABLES: dict[str, np.ndarray] = {}


def to_compute_dtype(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Turn stored values into float32 (F16 stays float16, as convert_hf_to_gguf.py keeps it)."""
    if dtype == "F32":
        return raw
    if dtype == "F16":
        return raw
    if dtype == "BF16":
        x = raw.astype(np.uint32)
        x <<= 16
        return x.view(np.float32)
    if dtype in ("F8_E4M3", "F8_E5M2"):
        if dtype not in _F8_TABLES:
            _F8_TABLES[dtype] = _f8_table(4, 3, True) if dtype == "F8_E4M3" else _f8_table(5, 2, False)
        return _F8_TABLES[dtype][raw]
    return raw.astype(np.float32)


class TensorSource:
    """name -> (shape, dtype, loader) for every tensor of a checkpoint, in file order."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[int, ...], str, Callable[[], np.ndarray], str]] = {}
        self._closers: list[Callable[[], None]] = []

    def add(self, name: str, shape: Iterable[int], dtype: str, load: Callable[[], np.ndarray], origin: str) -> None:
        if name in self._entries:
            raise FormatError(f"{origin}: tensor {name!r} also appears in {self._entries[name][3]}")
        self._entries[name] = (tuple(int(s) for s in shape), dtype, load, origin)

    def replace(self, name: str, dtype: str, load: Callable[[], np.ndarray]) -> None:
        shape, _, _, origin = self._entries[name]
        self._entries[name] = (shape, dtype, load, origin)

    def remove(self, name: str) -> None:
        del self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][0]

    def dtype(self, name: str) -> str:
        return self._entries[name][1]

    def origin(self, name: str) -> str:
        return self._entries[name][3]

    def raw(self, name: str) -> np.ndarray:
        return self._entries[name][2]()

    def get_raw(self, name: str) -> tuple[np.ndarray, str]:
        """The stored values (BF16 as uint16, FP8 as uint8, F64 upcast later), reading lazily (memory-mapped)."""
        shape, dtype, load, origin = self._entries[name]
        if dtype not in FLOAT_DTYPES:
            raise GGQuantError(f"{origin}: tensor {name!r} has dtype {dtype}, not a floating-point type")
        try:
            arr = load()
        except Exception as e:
            raise FormatError(f"{origin}: cannot read tensor {name!r}: {e}") from e
        return arr.reshape(shape), dtype

    def get(self, name: str) -> np.ndarray:
        """The tensor as float32 (or float16 when stored as F16), reading it now."""
        arr, dtype = self.get_raw(name)
        return to_compute_dtype(arr, dtype)

    def close(self) -> None:
        for c in self._closers:
            c()
        self._closers.clear()


# ---------------------------------------------------------------------------------------------
# safetensors


def _read_safetensors_header(path: Path) -> tuple[dict[str, Any], int]:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise SafetensorsError(f"{path}: file too short for a safetensors header")
            n = int.from_bytes(head, "little")
            if n > 100_000_000:
                raise SafetensorsError(f"{path}: header length {n} exceeds 100 MB")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        if isinstance(e, SafetensorsError):
            raise
        raise SafetensorsError(f"{path}: not a readable safetensors file: {e}") from e
    return header, 8 + n


def _tensor_table(path: Path) -> tuple[list[tuple[str, str, tuple[int, ...], int, int]], int]:
    """(name, dtype, shape, begin, end) per tensor in file order, and where the data section starts.

    The header is parsed and validated by ggquant.safetensors when it is available (strict JSON,
    offsets checked), else by the minimal reader here."""
    try:
        from .. import safetensors as st  # ggquant's own reader
    except ImportError:
        st = None
    if st is not None and hasattr(st, "safe_open") and hasattr(st.SafetensorsFile, "data_offsets"):
        try:
            f = st.safe_open(str(path))
        except GGQuantError as e:  # its messages do not always name the file
            raise type(e)(f"{path}: {e}") from None
        try:
            rows = [(n, str(f.dtype(n)).upper(), tuple(int(x) for x in f.shape(n)), *f.data_offsets(n))
                    for n in f.keys()]  # noqa: SIM118 (file order comes from the offsets)
        finally:
            f.close()
        with open(path, "rb") as fh:
            data_start = 8 + int.from_bytes(fh.read(8), "little")
    else:
        header, data_start = _read_safetensors_header(path)
        rows = []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                b, e = (int(x) for x in info["data_offsets"])
                rows.append((name, str(info["dtype"]), tuple(int(s) for s in info["shape"]), b, e))
            except (KeyError, TypeError, ValueError) as err:
                raise SafetensorsError(f"{path}: malformed header entry for tensor {name!r}: {err}") from None
    rows.sort(key=lambda r: r[3])
    return rows, data_start


def _add_safetensors_file(src: TensorSource, path: Path) -> None:
    rows, data_start = _tensor_table(path)
    size = path.stat().st_size
    for name, dtype, shape, b, e in rows:
        if dtype not in _ST_DTYPES:
            src.add(name, shape, dtype, lambda: np.zeros(0), str(path))
            continue
        npdt = _ST_DTYPES[dtype]
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != n * npdt.itemsize or data_start + e > size:
            raise SafetensorsError(f"{path}: tensor {name!r} has offsets [{b}, {e}) that do not match its shape "
                                   f"and dtype or the file size")

        def load(b=b, e=e, npdt=npdt, shape=shape):
            # one mapping per tensor, released with the array: resident pages stay bounded by the tensors in use
            if e == b:
                return np.zeros(shape, npdt)
            return np.memmap(path, dtype=npdt, mode="r", offset=data_start + b, shape=shape)

        src.add(name, shape, dtype, load, str(path))


# ---------------------------------------------------------------------------------------------
# PyTorch .bin

_TORCH_DTYPES = {"torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16", "torch.float64": "F64",
                 "torch.float8_e4m3fn": "F8_E4M3", "torch.float8_e5m2": "F8_E5M2"}


def _torch_to_numpy(t: Any) -> tuple[np.ndarray, str]:
    dt = _TORCH_DTYPES.get(str(t.dtype))
    t = t.detach().cpu().contiguous()
    if dt == "BF16":
        import torch

        return t.view(torch.int16).numpy().view(np.uint16), dt
    if dt in ("F8_E4M3", "F8_E5M2"):
        import torch

        return t.view(torch.uint8).numpy(), dt
    if dt is None:
        return t.numpy(), str(t.dtype).replace("torch.", "").upper()
    return t.numpy(), dt


def _add_torch_file(src: TensorSource, path: Path) -> None:
    try:
        import torch
    except ImportError as e:
        raise GGQuantError(f"{path}: reading pytorch_model*.bin needs PyTorch (pip install torch)") from e
    try:
        sd = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    except Exception as e:
        raise FormatError(f"{path}: cannot load PyTorch checkpoint: {e}") from e
    for name, t in sd.items():
        if not hasattr(t, "dtype"):
            continue
        dt = _TORCH_DTYPES.get(str(t.dtype), str(t.dtype).replace("torch.", "").upper())
        src.add(name, tuple(t.shape), dt, lambda t=t: _torch_to_numpy(t)[0], str(path))


# ---------------------------------------------------------------------------------------------


def _part_names(d: Path, prefix: str, suffix: str) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix))


def open_checkpoint(model_dir: str | os.PathLike[str]) -> TensorSource:
    """Index the weight files of a Hugging Face model directory (safetensors preferred, else .bin)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise GGQuantError(f"{d}: not a directory (expected a Hugging Face model directory with config.json)")
    parts = _part_names(d, "model", ".safetensors")
    is_st = bool(parts) or (d / "model.safetensors.index.json").is_file()
    if not is_st:
        parts = _part_names(d, "pytorch_model", ".bin")
    if not parts and not is_st:
        raise GGQuantError(f"{d}: no model*.safetensors or pytorch_model*.bin files found")
    index_file = d / ("model.safetensors.index.json" if is_st else "pytorch_model.bin.index.json")
    weight_map: dict[str, str] = {}
    if index_file.is_file():
        try:
            weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise FormatError(f"{index_file}: cannot read 'weight_map': {e}") from e
        parts = sorted(set(weight_map.values()))
    src = TensorSource()
    for p in parts:
        if not (d / p).is_file():
            raise FormatError(f"{index_file}: lists {p}, which is missing")
        if is_st:
            _add_safetensors_file(src, d / p)
        else:
            _add_torch_file(src, d / p)
    if weight_map:
        got, want = set(src.names()), set(weight_map)
        if got != want:
            missing, extra = sorted(want - got), sorted(got - want)
            raise FormatError(f"{index_file}: weight_map and shards disagree; missing tensors: {missing[:5]}, "
                              f"extra tensors: {extra[:5]}")
    return src


def from_state_dict(state_dict: Mapping[str, Any]) -> TensorSource:
    """Wrap a dict of NumPy arrays or torch tensors."""
    src = TensorSource()
    for name, t in state_dict.items():
        if type(t).__module__.startswith("torch"):
            dt = _TORCH_DTYPES.get(str(t.dtype), str(t.dtype).replace("torch.", "").upper())
            src.add(name, tuple(t.shape), dt, lambda t=t: _torch_to_numpy(t)[0], "<state dict>")
            continue
        a = np.asarray(t)
        kind = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64"}.get(a.dtype)
        if kind is None and a.dtype.name == "bfloat16":
            a, kind = a.view(np.uint16), "BF16"
        if kind is None:
            kind = a.dtype.name.upper()
        src.add(name, a.shape, kind, lambda a=a: a, "<state dict>")
    return src


def is_block_index(name: str) -> int | None:
    m = re.search(r"\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def dequantize_fp8_blocks(src: TensorSource, block_size: list[int] | None) -> int:
    """Replace FP8 weights that have a ``*_scale_inv`` companion by their float32 values
    (``weight * scale_inv`` per block of ``block_size``, as convert_hf_to_gguf.py's ``fp8`` path).
    Returns how many weights were dequantized."""
    n = 0
    for name in [k for k in src.names() if k.endswith("_scale_inv")]:
        wname = name[: -len("_scale_inv")]
        if wname not in src:
            raise FormatError(f"{src.origin(name)}: {name} has no weight {wname}")
        wshape = src.shape(wname)
        w_dtype, w_load = src.dtype(wname), src._entries[wname][2]
        s_dtype, s_load = src.dtype(name), src._entries[name][2]

        def load(w_dtype=w_dtype, w_load=w_load, s_dtype=s_dtype, s_load=s_load, wshape=wshape):
            w = to_compute_dtype(w_load(), w_dtype).astype(np.float32, copy=False).reshape(wshape)
            sc = to_compute_dtype(s_load(), s_dtype).astype(np.float32, copy=False)
            if block_size:
                off = sc.ndim - len(block_size)
                for i, b in enumerate(block_size):
                    sc = np.repeat(sc, int(b), axis=off + i)
                sc = sc[tuple(slice(0, d) for d in wshape)]
            while sc.ndim < w.ndim:
                sc = sc[..., None]
            return w * sc

        src.replace(wname, "F32", load)
        src.remove(name)
        n += 1
    for name in [k for k in src.names() if k.endswith((".activation_scale", "_activation_scale", ".input_scale"))]:
        src.remove(name)
    return n
