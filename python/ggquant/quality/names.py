"""GGUF tensor names -> Hugging Face parameters: the inverse of the converter (:mod:`ggquant.hf.archs`).

The forward direction (which HF tensors make which GGUF tensor) comes from the converter itself
(``arch_for(...).tensors(...)``), so the two cannot drift apart; only the value transforms are inverted here,
because the converter keeps its own (``Arch.transform``, ``_permute``) private:

- Llama-family Q/K rows are interleaved by the converter (``LlamaModel.permute``); :func:`unpermute` undoes it.
- Gemma's norm weights get +1 in GGUF; -1 undoes it.
- stacked ``*_exps`` tensors are split back into one HF tensor per expert, or into row slices of a fused
  ``gate_up_proj``.

Quantization works row by row, so quantizing an HF weight whose rows are merely reordered (Q/K) gives exactly
the values of the GGUF tensor, rows reordered the same way: fake quantization needs no permutation at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GGQuantError
from ..hf.archs import Arch, arch_for
from ..hf.checkpoint import Checkpoint


@dataclass(frozen=True)
class Part:
    """One HF tensor (or a slice of it) holding part of a GGUF tensor.

    Attributes:
        hf_name: the Hugging Face parameter name.
        index: index into the HF tensor (row slice of a fused gate/up), or None for all of it.
        expert: which expert of a stacked 3-D GGUF tensor this is, or None for the whole GGUF tensor.
    """

    hf_name: str
    index: tuple[Any, ...] | None = None
    expert: int | None = None


@dataclass
class TensorMap:
    """Where a GGUF tensor lives in the Hugging Face model, and how its values differ there.

    Attributes:
        name: GGUF tensor name.
        shape: its NumPy-order shape.
        parts: the HF tensors (slices) that make it up.
        permute_heads: (n_head, n_head_kv) for the converter's Q/K row interleaving, or None.
        norm_offset: the constant the converter added (Gemma norms: 1.0).
    """

    name: str
    shape: tuple[int, ...]
    parts: list[Part] = field(default_factory=list)
    permute_heads: tuple[int, int] | None = None
    norm_offset: float = 0.0

    def to_hf(self, values: np.ndarray, part: Part) -> np.ndarray:
        """The HF values of ``part`` from the GGUF tensor's float values."""
        a = values[part.expert] if part.expert is not None else values
        if self.permute_heads is not None:
            a = unpermute(a, *self.permute_heads)
        if self.norm_offset:
            a = a - np.float32(self.norm_offset)
        return a


def unpermute(w: np.ndarray, n_head: int, n_head_kv: int) -> np.ndarray:
    """Undo ``LlamaModel.permute`` (interleaved rotary pairs -> HF rotate-half order) along the first axis.

    Example:
        >>> import numpy as np
        >>> unpermute(np.arange(4), 1, 1).tolist()   # the converter turns [0, 1, 2, 3] into [0, 2, 1, 3]
        [0, 2, 1, 3]
    """
    n = n_head_kv if n_head != n_head_kv else n_head
    out: np.ndarray = w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    return out


def gguf_tensor_map(hparams: Mapping[str, Any], hf_shapes: Mapping[str, tuple[int, ...]]) -> tuple[Arch, dict[str, TensorMap]]:
    """The GGUF tensors the converter would write for a model, and where each lives in its HF parameters.

    Args:
        hparams: the model's config (``config.json`` as a dict).
        hf_shapes: HF parameter name -> shape (tied parameters once, as ``named_parameters()`` lists them).

    Returns:
        ``(arch, {gguf name: TensorMap})`` (``arch.gguf_arch`` is the GGUF architecture name); tensors the converter generates (``rope_freqs``) are left out.

    Raises:
        GGQuantError: the architecture (or a tensor of it) has no GGUF mapping.
    """
    arch = arch_for(dict(hparams))
    src = Checkpoint()
    for name, shape in hf_shapes.items():
        src.add(name, shape, "F32", lambda: np.zeros(0, np.float32), "<model>")  # shapes only, never loaded
    out: dict[str, TensorMap] = {}
    for ot in arch.tensors(src):
        if not ot.sources:
            continue
        tm = TensorMap(ot.name, tuple(ot.shape))
        first = ot.sources[0]
        if len(ot.sources) > 1:
            tm.parts = [Part(s, None, i) for i, s in enumerate(ot.sources)]
        elif tuple(hf_shapes[first]) != tuple(ot.shape) and ot.name.endswith(("ffn_gate_exps.weight",
                                                                           "ffn_up_exps.weight")):  # fused gate_up_proj rows
            f = ot.shape[1]
            rows = slice(0, f) if "ffn_gate_exps" in ot.name else slice(f, None)
            tm.parts = [Part(first, (slice(None), rows), None)]
        elif tuple(hf_shapes[first]) != tuple(ot.shape):  # a split this inverse does not know (DeepSeek's kv_b_proj)
            raise GGQuantError(f"{ot.name}: made of {first} {tuple(hf_shapes[first])} by a reshaping split that has "
                               f"no inverse here (architecture {arch.hf_arch})")
        else:
            tm.parts = [Part(first)]
        if arch.gguf_arch == "llama" and first.endswith(("q_proj.weight", "q_proj.bias")):
            tm.permute_heads = (arch.n_head, arch.n_head)
        elif arch.gguf_arch == "llama" and first.endswith(("k_proj.weight", "k_proj.bias")):
            tm.permute_heads = (arch.n_head, arch.n_head_kv)
        if arch.gguf_arch == "gemma" and first.endswith("norm.weight"):
            tm.norm_offset = 1.0
        if ot.name in out:
            raise GGQuantError(f"two Hugging Face tensors map to GGUF tensor {ot.name!r}")
        out[ot.name] = tm
    return arch, out


__all__ = ["Part", "TensorMap", "gguf_tensor_map", "unpermute"]
