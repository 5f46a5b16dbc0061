"""The layout ``llama-quantize`` gives a file: its key order, its tensor order, the imatrix keys.

Shared by :func:`ggquant.quantize_file` (GGUF -> GGUF) and :func:`ggquant.convert` (a Hugging Face
checkpoint to a quantized preset: the same file as ``convert_hf_to_gguf.py`` then ``llama-quantize``).
Facts from llama.cpp's ``src/llama-quant.cpp:llama_model_quantize_impl()`` and
``tools/quantize/quantize.cpp:main()``:

- every ``gguf_set_*`` erases a key and appends it, so ``general.quantization_version`` and
  ``general.file_type`` (both UINT32) end up after the copied keys, and the ``split.*`` keys are dropped;
- then the KV overrides, here the imatrix keys ``quantize.imatrix.file`` and ``.dataset`` (strings cut to
  127 bytes), ``.entries_count`` and ``.chunks_count`` (UINT32; the latter only when known);
- tensors in ``llama_model_loader``'s order (:func:`ggquant.plan.tensor_order_key`).

Example:
    >>> from ggquant.layout import quantized_metadata
    >>> e = [("general.architecture", "llama", 8, None), ("general.file_type", 1, 4, None),
    ...      ("general.quantization_version", 2, 4, None), ("tokenizer.ggml.model", "gpt2", 8, None)]
    >>> [k for k, *_ in quantized_metadata(e, 15)]
    ['general.architecture', 'tokenizer.ggml.model', 'general.quantization_version', 'general.file_type']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from .gguf import GGUFValueType
from .imatrix import Imatrix

#: one metadata entry: (key, value, GGUF value type, element type of an array or None)
Entry = tuple[str, Any, int, "int | None"]

SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")


def imatrix_entries(path: str | os.PathLike[str], im: Imatrix) -> list[Entry]:
    """The keys llama-quantize records for an imatrix file (none for an empty one).

    Args:
        path: the path as the user gave it (recorded as typed).
        im: the file's contents (:func:`ggquant.read_imatrix`).
    """
    if not im.weights:
        return []
    s, u32 = int(GGUFValueType.STRING), int(GGUFValueType.UINT32)
    out: list[Entry] = [("quantize.imatrix.file", os.fspath(path).encode()[:127], s, None)]
    if im.datasets:  # only the first one (a TODO in quantize.cpp)
        out.append(("quantize.imatrix.dataset", im.datasets[0].encode("utf-8", "surrogateescape")[:127], s, None))
    out.append(("quantize.imatrix.entries_count", len(im.weights), u32, None))
    if im.chunk_count > 0:
        out.append(("quantize.imatrix.chunks_count", im.chunk_count, u32, None))
    return out


def quantized_metadata(entries: Sequence[Entry], file_type: int, overrides: Iterable[Entry] = ()) -> list[Entry]:
    """``entries`` as llama-quantize rewrites them for ``file_type``: the two moved keys last, split keys
    dropped, then ``overrides`` (each moving an existing key to the end)."""
    u32 = int(GGUFValueType.UINT32)
    kvs: dict[str, Entry] = {e[0]: e for e in entries if e[0] not in SPLIT_KEYS}
    for e in [("general.quantization_version", 2, u32, None), ("general.file_type", file_type, u32, None),
              *overrides]:
        kvs.pop(e[0], None)
        kvs[e[0]] = e
    return list(kvs.values())


__all__ = ["Entry", "SPLIT_KEYS", "imatrix_entries", "quantized_metadata"]
