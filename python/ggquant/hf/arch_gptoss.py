"""gpt-oss (``GptOssForCausalLM``), as llama.cpp's convert_hf_to_gguf.py (``GptOssModel``) converts it.

The released checkpoints store the experts in MXFP4: ``mlp.experts.{gate_up_proj,down_proj}_blocks`` (uint8,
``(experts, rows, cols / 32, 16)``, two E2M1 codes a byte) and ``_scales`` (uint8 E8M0 exponents,
``(experts, rows, cols / 32)``). llama.cpp keeps them as they are: each 32-value block is repacked into ggml's
``block_mxfp4`` (the exponent byte, then 16 bytes holding values ``j`` and ``j + 16`` in the low and high
nibble; the codes themselves and the exponent are the same on both sides), gate and up are the even and odd
rows of ``gate_up_proj``, and these tensors come first in the file. A checkpoint with float experts (the bf16
form: ``gate_up_proj`` ``(experts, hidden, 2 * ff)``, ``down_proj`` ``(experts, ff, hidden)``) is transposed
and split the same way and then converted like any other tensor.
"""

from __future__ import annotations

import re
from functools import partial

import numpy as np

from ..errors import GGQuantError
from ..qtypes import GGMLType
from . import tokenizer as tk
from .archs import Arch, OutTensor, register
from .checkpoint import Checkpoint

_EXPERTS = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)(_bias|_blocks|_scales)?")
# hyper-parameters transformers' GptOssConfig fills in (convert_hf_to_gguf.py reads config.json through it)
_DEFAULTS = {"head_dim": 64, "sliding_window": 128}


def repack_mxfp4(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """MXFP4 blocks as the gpt-oss checkpoints store them -> ggml ``block_mxfp4`` bytes; only bits move.

    Args:
        blocks: uint8 ``(..., n_blocks, 16)``: value ``2k`` of a block in the low nibble of byte ``k``,
            value ``2k + 1`` in the high one.
        scales: uint8 ``(..., n_blocks)``: the E8M0 exponent of each block.

    Returns:
        uint8 ``(..., n_blocks * 17)``: per block the exponent, then byte ``j`` = value ``j`` | value ``j + 16`` << 4.

    Example:
        >>> import numpy as np
        >>> repack_mxfp4(np.array([[[0x21] + [0] * 15]], np.uint8), np.array([[127]], np.uint8))[0, :3].tolist()
        [127, 1, 2]
    """
    if blocks.shape[-1] != 16 or blocks.shape[:-1] != scales.shape:
        raise GGQuantError(f"MXFP4 blocks {blocks.shape} and scales {scales.shape} do not match "
                           f"((..., n, 16) and (..., n))")
    codes = np.stack([blocks & 0x0F, blocks >> 4], axis=-1).reshape(*blocks.shape[:-1], 32)  # in value order
    qs = codes[..., :16] | (codes[..., 16:] << 4)
    out = np.concatenate([scales[..., None], qs], axis=-1)
    return np.ascontiguousarray(out.reshape(*blocks.shape[:-2], blocks.shape[-2] * 17))


def _mxfp4_part(src: Checkpoint, blocks: str, scales: str, expert: int, rows: slice) -> tuple[np.ndarray, GGMLType]:
    return repack_mxfp4(src.stored(blocks)[expert, rows], src.stored(scales)[expert, rows]), GGMLType.MXFP4


def _float_part(src: Checkpoint, name: str, expert: int, rows: slice) -> tuple[np.ndarray, str]:
    a, dtype = src.get_raw(name)
    return np.ascontiguousarray(np.asarray(a[expert]).T[rows]), dtype


def _bias_part(src: Checkpoint, name: str, cols: slice) -> tuple[np.ndarray, str]:
    a, dtype = src.get_raw(name)
    return np.ascontiguousarray(np.asarray(a)[:, cols]), dtype


@register("gpt-oss")
class GptOssArch(Arch):
    """``GptOssModel``: attention sinks, a biased router, experts with biases, MXFP4 experts kept."""

    kept_quant_method = "mxfp4"
    arch_names = [(re.compile(a), b) for a, b in [
        (r"model\.layers\.(\d+)\.self_attn\.sinks", "blk.{0}.attn_sinks.weight"),
        (r"model\.layers\.(\d+)\.mlp\.router\.(weight|bias)", "blk.{0}.ffn_gate_inp.{1}"),
        (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "blk.{0}.post_attention_norm.weight"),
    ]]

    def __post_init__(self) -> None:  # GptOssConfig's defaults: head_dim 64 when absent, hidden / heads when null
        h = {**_DEFAULTS, **self.hparams}
        if h["head_dim"] is None:
            h["head_dim"] = int(h["hidden_size"]) // int(h["num_attention_heads"])
        self.hparams = h

    def tensors(self, src: Checkpoint) -> list[OutTensor]:
        out = super().tensors(src)
        # convert_hf_to_gguf.py writes the repacked MXFP4 tensors before all others
        return [t for t in out if t.stored_type is not None] + [t for t in out if t.stored_type is None]

    def arch_tensors(self, src: Checkpoint, hf_name: str, name: str) -> list[OutTensor] | None:
        m = _EXPERTS.fullmatch(name)
        if m is None:
            return None
        bid, proj, kind = m.group(1), m.group(2), m.group(3) or ""
        # gate_up_proj interleaves the two: gate is every even row (column of the float form), up every odd one
        halves = ([("gate", slice(0, None, 2)), ("up", slice(1, None, 2))] if proj == "gate_up_proj"
                  else [("down", slice(None))])
        shape = src.shape(hf_name)
        if kind == "_blocks":
            return []  # read with its _scales
        if kind == "_bias":
            if len(shape) != 2:
                raise GGQuantError(f"{src.origin(hf_name)}: {hf_name} should be 2-D (experts, rows), got {shape}")
            return [OutTensor(f"blk.{bid}.ffn_{h}_exps.bias", (shape[0], len(range(shape[1])[r])),
                              [partial(_bias_part, src, hf_name, r)], [hf_name], force_f32=True) for h, r in halves]
        if kind == "_scales":
            blocks = hf_name[: -len("_scales")] + "_blocks"
            if blocks not in src:
                raise GGQuantError(f"{src.origin(hf_name)}: {hf_name} has no {blocks}")
            bshape = src.shape(blocks)
            if len(shape) != 3 or bshape != (*shape, 16) or src.dtype(blocks) != "U8" or src.dtype(hf_name) != "U8":
                raise GGQuantError(f"{src.origin(hf_name)}: MXFP4 {blocks} {bshape} {src.dtype(blocks)} and "
                                   f"{hf_name} {shape} {src.dtype(hf_name)} should be uint8 (experts, rows, "
                                   f"cols / 32, 16) and (experts, rows, cols / 32)")
            ne, rows, cols = shape[0], shape[1], shape[2] * 32
            return [OutTensor(f"blk.{bid}.ffn_{h}_exps.weight", (ne, len(range(rows)[r]), cols),
                              [partial(_mxfp4_part, src, blocks, hf_name, e, r) for e in range(ne)], [hf_name],
                              stored_type=GGMLType.MXFP4) for h, r in halves]
        if len(shape) != 3:
            raise GGQuantError(f"{src.origin(hf_name)}: {hf_name} should be 3-D (experts, cols, rows), got {shape}")
        ne, cols, rows = shape
        return [OutTensor(f"blk.{bid}.ffn_{h}_exps.weight", (ne, len(range(rows)[r]), cols),
                          [partial(_float_part, src, hf_name, e, r) for e in range(ne)], [hf_name]) for h, r in halves]

    def hparam_entries(self, file_type: int) -> list[tk.Entry]:
        h = self.hparams
        return [*super().hparam_entries(file_type),
                ("gpt-oss.attention.sliding_window", int(h["sliding_window"]), tk.U32, None),
                ("gpt-oss.expert_feed_forward_length", int(h["intermediate_size"]), tk.U32, None)]
