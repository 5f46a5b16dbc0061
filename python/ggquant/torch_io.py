"""torch tensors in and out of ggquant, without importing torch unless one is handed over.

- :func:`to_numpy`: what :func:`ggquant.quantize` does with a torch tensor (any float dtype, with
  ``requires_grad``, on any device): detach, copy to the CPU once if it lives elsewhere, and view it
  as NumPy without a further copy (bfloat16 as ``ml_dtypes.bfloat16`` when installed, else widened
  to float32, which changes no quantized byte: the kernels widen bfloat16 to float32 themselves).
  Results stay NumPy arrays.
- :class:`TorchMap`: the zero-copy torch tensors ``ggquant.safe_open(path, framework="pt")`` returns:
  one private (copy-on-write) mapping of the file, so a tensor can be written to without touching
  the file, as ``safetensors.torch`` does.
- :func:`saveable`: a torch tensor as the safetensors dtype name and the NumPy array of its bytes, so
  ``ggquant.save_file`` writes what ``safetensors.torch.save_file`` writes.

A torch tensor is recognized by its type's module (``torch``, ``torch.nn.parameter``...), so plain
NumPy use never imports torch.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

from .errors import GGQuantError, SafetensorsError

#: safetensors dtype name -> torch dtype attribute name (the dtypes torch can view zero-copy).
TORCH_DTYPES: dict[str, str] = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "C64": "complex64", "U64": "uint64",
    "U32": "uint32", "U16": "uint16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "F8_E4M3FNUZ": "float8_e4m3fnuz", "F8_E5M2FNUZ": "float8_e5m2fnuz", "F8_E8M0": "float8_e8m0fnu",
}
_FROM_TORCH = {v: k for k, v in TORCH_DTYPES.items()}
# torch dtypes NumPy has no type for: saved through an unsigned view of the same width
_BIT_VIEWS = {"bfloat16": ("int16", np.uint16), "uint16": ("int16", np.uint16), "uint32": ("int32", np.uint32),
              "uint64": ("int64", np.uint64)}
_FRAMEWORKS = {"np": "np", "numpy": "np", "pt": "pt", "torch": "pt"}


def is_torch_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (or Parameter), decided without importing torch."""
    return type(x).__module__.split(".", 1)[0] == "torch" and hasattr(x, "detach")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise GGQuantError("framework='pt' needs PyTorch: pip install torch (or ggquant[torch])") from None
    return torch


def framework_of(framework: str) -> str:
    """``"np"`` or ``"pt"`` for the framework names safetensors accepts ("pt", "np", "numpy", "torch")."""
    try:
        return _FRAMEWORKS[framework]
    except (KeyError, TypeError):
        raise GGQuantError(f"framework {framework!r} is not supported; use 'np' (NumPy) or 'pt' (torch)") from None


def _cpu(x: Any) -> Any:
    x = x.detach()
    return x if x.device.type == "cpu" else x.cpu()


def to_numpy(x: Any) -> np.ndarray:
    """A torch tensor as a NumPy array (zero-copy for a contiguous CPU tensor).

    Args:
        x: a torch tensor of any float dtype (float8 types are widened to float32), on any device.

    Returns:
        float32/float16/float64 arrays as such; bfloat16 as ``ml_dtypes.bfloat16`` (float32 without
        ml_dtypes); other dtypes as their NumPy equivalent.

    Example:
        >>> import torch  # doctest: +SKIP
        >>> to_numpy(torch.ones(2, 32, dtype=torch.bfloat16, requires_grad=True)).dtype  # doctest: +SKIP
        dtype(bfloat16)
    """
    t = _cpu(x)
    name = str(t.dtype).removeprefix("torch.")
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            return np.asarray(t.float().numpy())
        return np.asarray(t.contiguous().view(_torch().int16).numpy()).view(ml_dtypes.bfloat16)
    if name.startswith("float8"):
        return np.asarray(t.float().numpy())
    return np.asarray(t.numpy())


def saveable(name: str, x: Any) -> tuple[str, np.ndarray]:
    """A torch tensor as (safetensors dtype, NumPy array of the same bytes) for ``save_file``.

    Raises:
        SafetensorsError: a non-contiguous or sparse tensor, or a dtype safetensors cannot store
            (``safetensors.torch.save_file`` refuses the same).
    """
    torch = _torch()
    if x.layout != torch.strided:
        raise SafetensorsError(f"[safetensors_write] tensor {name!r} is sparse; call .to_dense() first")
    if not x.is_contiguous():
        raise SafetensorsError(f"[safetensors_write] tensor {name!r} is not contiguous; call .contiguous() first")
    t = _cpu(x)
    dt = str(t.dtype).removeprefix("torch.")
    if dt not in _FROM_TORCH:
        raise SafetensorsError(f"[safetensors_write] tensor {name!r}: dtype {t.dtype} cannot be stored in safetensors")
    if dt in _BIT_VIEWS:
        view, np_dt = _BIT_VIEWS[dt]
        arr = np.asarray(t.view(getattr(torch, view)).numpy()).view(np_dt)
    elif dt.startswith("float8"):
        arr = np.asarray(t.view(torch.uint8).numpy())
    else:
        arr = np.asarray(t.numpy())
    return _FROM_TORCH[dt], arr


def check_not_shared(tensors: dict[str, Any]) -> None:
    """Refuse torch tensors that overlap in memory, as ``safetensors.torch.save_file`` does.

    Raises:
        SafetensorsError: naming the tensors that share memory.
    """
    spans: list[tuple[int, int, int, str]] = []
    for name, t in tensors.items():
        if is_torch_tensor(t) and t.numel() > 0 and t.device.type != "meta":
            start = t.data_ptr()
            spans.append((t.untyped_storage().data_ptr(), start, start + t.numel() * t.element_size(), name))
    spans.sort()
    for (s0, _, e0, n0), (s1, b1, _, n1) in zip(spans, spans[1:]):
        if s0 == s1 and b1 < e0:
            raise SafetensorsError(f"[safetensors_write] tensors {n0!r} and {n1!r} share memory; save copies "
                                   f"(.clone()) or only one of them")


class TorchMap:
    """Zero-copy torch views of one safetensors file, through one private (copy-on-write) mapping.

    Args:
        path: the file (already validated by :class:`ggquant.SafetensorsFile`).
    """

    def __init__(self, path: str) -> None:
        self._torch = _torch()
        self._path = path
        with open(path, "rb") as f:
            self._data_start = 8 + int(struct.unpack("<Q", f.read(8))[0])
        self._storage: Any = None

    def tensor(self, st_dtype: str, shape: tuple[int, ...], begin: int, end: int) -> Any:
        """The tensor at data offsets ``[begin, end)``: a view for torch-native dtypes, else raw ``uint8`` bytes."""
        torch = self._torch
        dt = getattr(torch, TORCH_DTYPES.get(st_dtype, ""), None)
        if end == begin:
            return torch.empty(shape, dtype=dt or torch.uint8)
        if self._storage is None:
            self._storage = torch.UntypedStorage.from_file(self._path, False, os.path.getsize(self._path))
        start = self._data_start + begin
        if dt is None:  # F4/F6: packed bytes, as the NumPy reader returns them
            return torch.empty(0, dtype=torch.uint8).set_(self._storage, start, (end - begin,), (1,))
        item = torch.empty(0, dtype=dt).element_size()
        if start % item:  # a misaligned tensor cannot be viewed in place; copy it
            raw = torch.empty(0, dtype=torch.uint8).set_(self._storage, start, (end - begin,), (1,))
            return raw.clone().view(dt).reshape(shape)
        strides = [1] * len(shape)
        for i in range(len(shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * shape[i + 1]
        return torch.empty(0, dtype=dt).set_(self._storage, start // item, tuple(shape), tuple(strides))


__all__ = ["TORCH_DTYPES", "TorchMap", "check_not_shared", "framework_of", "is_torch_tensor", "saveable", "to_numpy"]
