"""Per-tensor quantization plans: llama.cpp's presets (``Q4_K_M``, ``Q5_K_S``, ...) tensor by tensor.

A *preset* (llama.cpp calls it a file type, ``llama_ftype``) is a default ggml type plus rules that
give some tensors more bits: ``attn_v`` and ``ffn_down`` in chosen layers, the output matrix, the
token embeddings when they are tied to the output, and adjustments for grouped-query attention and
mixtures of experts. :func:`plan_quantization` reproduces the choice ``llama-quantize`` makes
(``llama_tensor_get_type`` in llama.cpp's ``src/llama-quant.cpp``) for the same tensor list, including
which tensors are never quantized (1-D tensors, norms, expert routers) and the fallback to a type with
a smaller block when a row length is not a multiple of the block size.

Example:
    >>> from ggquant.plan import plan_quantization, ModelInfo
    >>> tensors = [("token_embd.weight", (1000, 256)), ("output_norm.weight", (256,))]
    >>> for i in range(2):
    ...     tensors += [(f"blk.{i}.attn_v.weight", (256, 256)), (f"blk.{i}.ffn_down.weight", (256, 512))]
    >>> p = plan_quantization(tensors, "Q4_K_M", ModelInfo(arch="llama", n_layer=2, n_head=4, n_head_kv=4))
    >>> [(t.name, t.type.name) for t in p.tensors][:3]    # tied embeddings get the output's Q6_K
    [('token_embd.weight', 'Q6_K'), ('output_norm.weight', 'F32'), ('blk.0.attn_v.weight', 'Q4_K')]
    >>> p.tensor("blk.1.attn_v.weight").type.name         # the last 1/8 of the layers get more bits
    'Q6_K'
    >>> p.file_type
    15
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import GGQuantError, UnsupportedTypeError
from .qtypes import GGMLType, resolve_type, type_info

T = GGMLType

# llama_ftype values (llama.h), the number written as general.file_type.
LLAMA_FTYPE: dict[str, int] = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
    "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
    "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "IQ2_XXS": 19, "IQ2_XS": 20, "Q2_K_S": 21,
    "IQ3_XS": 22, "IQ3_XXS": 23, "IQ1_S": 24, "IQ4_NL": 25, "IQ3_S": 26, "IQ3_M": 27,
    "IQ2_S": 28, "IQ2_M": 29, "IQ4_XS": 30, "IQ1_M": 31, "BF16": 32, "TQ1_0": 36,
    "TQ2_0": 37, "MXFP4_MOE": 38, "Q1_0": 40, "Q2_0": 41,
}

# llama_ftype_get_default_type
_DEFAULT_TYPE: dict[str, GGMLType] = {
    "Q4_0": T.Q4_0, "Q4_1": T.Q4_1, "Q5_0": T.Q5_0, "Q5_1": T.Q5_1, "Q8_0": T.Q8_0,
    "F16": T.F16, "BF16": T.BF16, "F32": T.F32, "Q1_0": T.Q1_0, "Q2_0": T.Q2_0,
    "MXFP4_MOE": T.MXFP4, "Q2_K_S": T.Q2_K, "Q2_K": T.Q2_K, "IQ3_XS": T.IQ3_S,
    "Q3_K_S": T.Q3_K, "Q3_K_M": T.Q3_K, "Q3_K_L": T.Q3_K, "Q4_K_S": T.Q4_K, "Q4_K_M": T.Q4_K,
    "Q5_K_S": T.Q5_K, "Q5_K_M": T.Q5_K, "Q6_K": T.Q6_K, "TQ1_0": T.TQ1_0, "TQ2_0": T.TQ2_0,
    "IQ2_XXS": T.IQ2_XXS, "IQ2_XS": T.IQ2_XS, "IQ2_S": T.IQ2_XS, "IQ2_M": T.IQ2_S,
    "IQ3_XXS": T.IQ3_XXS, "IQ1_S": T.IQ1_S, "IQ1_M": T.IQ1_M, "IQ4_NL": T.IQ4_NL,
    "IQ4_XS": T.IQ4_XS, "IQ3_S": T.IQ3_S, "IQ3_M": T.IQ3_S,
}

#: The presets ggquant documents and tests against llama.cpp (every llama_ftype above is accepted).
PRESETS: tuple[str, ...] = (
    "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_S", "Q4_K_M",
    "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "IQ4_NL", "IQ4_XS", "F16", "BF16", "F32",
)

# For a plain type ("q4_K"): the file type written, as llama-quantize --pure with that preset would.
_FTYPE_OF_TYPE: dict[GGMLType, str] = {
    T.F32: "F32", T.F16: "F16", T.BF16: "BF16", T.Q4_0: "Q4_0", T.Q4_1: "Q4_1", T.Q5_0: "Q5_0",
    T.Q5_1: "Q5_1", T.Q8_0: "Q8_0", T.Q2_K: "Q2_K", T.Q3_K: "Q3_K_M", T.Q4_K: "Q4_K_M",
    T.Q5_K: "Q5_K_M", T.Q6_K: "Q6_K", T.IQ2_XXS: "IQ2_XXS", T.IQ2_XS: "IQ2_XS", T.IQ2_S: "IQ2_M",
    T.IQ3_XXS: "IQ3_XXS", T.IQ3_S: "IQ3_S", T.IQ1_S: "IQ1_S", T.IQ1_M: "IQ1_M", T.IQ4_NL: "IQ4_NL",
    T.IQ4_XS: "IQ4_XS", T.TQ1_0: "TQ1_0", T.TQ2_0: "TQ2_0", T.MXFP4: "MXFP4_MOE", T.Q1_0: "Q1_0",
    T.Q2_0: "Q2_0",
}

_FLOAT_TYPES = (T.F32, T.F16, T.BF16, T.F64)

# tensor_type_fallback: a 256-block type whose row length does not fit falls back to a 32-block type
_FALLBACK: dict[GGMLType, GGMLType] = {
    T.IQ1_S: T.IQ4_NL, T.IQ1_M: T.IQ4_NL, T.IQ2_XXS: T.IQ4_NL, T.IQ2_XS: T.IQ4_NL, T.IQ2_S: T.IQ4_NL,
    T.IQ3_XXS: T.IQ4_NL, T.IQ3_S: T.IQ4_NL, T.IQ4_XS: T.IQ4_NL,
    T.Q2_0: T.Q4_0, T.Q2_K: T.Q4_0, T.Q3_K: T.Q4_0, T.TQ1_0: T.Q4_0, T.TQ2_0: T.Q4_0,
    T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0,
}

# categories (tensor_get_category)
_OUTPUT, _TOKEN_EMBD, _QKV, _KV_B, _V, _K, _Q, _ATTN_OUT, _UP, _GATE, _DOWN, _OTHER = range(12)

# substrings that make a tensor non-quantizable (tensor_allows_quantization), for every arch
_NEVER_QUANTIZED = (
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
    "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
    "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
    "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.",
    "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
)
_NEVER_QUANTIZED_EXACT = ("position_embd.weight", "token_types.weight")


@dataclass(frozen=True)
class ModelInfo:
    """The hyper-parameters llama.cpp's type choice depends on.

    Attributes:
        arch: GGUF architecture name (``"llama"``, ``"qwen2"``, ...).
        n_layer: number of transformer blocks.
        n_head / n_head_kv: attention heads and key/value heads (grouped-query attention when they differ).
        n_expert: experts per MoE layer (0 for dense models).
    """

    arch: str
    n_layer: int
    n_head: int = 1
    n_head_kv: int = 1
    n_expert: int = 0

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0

    @property
    def is_70b(self) -> bool:
        # llama.cpp's LLM_TYPE_70B, the only model size the type choice looks at
        if self.arch == "llama":
            return self.n_layer == 80 and self.n_head != self.n_head_kv
        return self.arch in ("qwen2", "deci", "olmo") and self.n_layer == 80


@dataclass(frozen=True)
class PlannedTensor:
    """One tensor of a plan: name, shape in NumPy order (rows last-but-one, row length last), ggml type, bytes."""

    name: str
    shape: tuple[int, ...]
    type: GGMLType
    nbytes: int
    source_type: GGMLType = GGMLType.F32
    requires_imatrix: bool = False
    fallback: bool = False

    @property
    def n_elements(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass
class Plan:
    """A quantization plan: the tensors with their target types, the preset and ``general.file_type``.

    Attributes:
        tensors: :class:`PlannedTensor` list in the order given to :func:`plan_quantization`.
        preset: the preset or type name the plan was made for.
        file_type: llama_ftype number to write as ``general.file_type``.
        n_fallback: tensors whose row length forced a fallback type.
    """

    tensors: list[PlannedTensor]
    preset: str
    file_type: int
    n_fallback: int = 0
    warnings: list[str] = field(default_factory=list)

    def tensor(self, name: str) -> PlannedTensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def types(self) -> dict[str, GGMLType]:
        """Tensor name -> ggml type."""
        return {t.name: t.type for t in self.tensors}

    def tensor_data_size(self, alignment: int = 32) -> int:
        """Bytes of the GGUF data section (each tensor padded to ``alignment``)."""
        return sum(_pad(t.nbytes, alignment) for t in self.tensors)

    @property
    def bits_per_weight(self) -> float:
        n = sum(t.n_elements for t in self.tensors)
        return 8.0 * sum(t.nbytes for t in self.tensors) / max(n, 1)

    def format(self, header_bytes: int | None = None, alignment: int = 32) -> str:
        """A human-readable table: name, shape (ggml order, as llama.cpp prints it), type, bytes, then totals."""
        w = max([len(t.name) for t in self.tensors] + [4])
        lines = [f"{'name':<{w}}  {'shape':<22} {'type':<8} {'bytes':>14}"]
        for t in self.tensors:
            shape = "{" + ", ".join(str(s) for s in reversed(t.shape)) + "}"
            mark = "  (fallback)" if t.fallback else ""
            lines.append(f"{t.name:<{w}}  {shape:<22} {t.type.name:<8} {t.nbytes:>14,}{mark}")
        data = self.tensor_data_size(alignment)
        lines.append(f"{len(self.tensors)} tensors, preset {self.preset} (file type {self.file_type}), "
                     f"{self.bits_per_weight:.2f} bits per weight")
        if header_bytes is not None:
            total = header_bytes + data
            lines.append(f"predicted file size: {total:,} bytes ({total / 2**20:.2f} MiB): "
                         f"header {header_bytes:,} + tensor data {data:,}")
        else:
            lines.append(f"tensor data: {data:,} bytes ({data / 2**20:.2f} MiB)")
        return "\n".join(lines)


def _pad(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _n_dims(shape: Sequence[int]) -> int:
    # ggml_n_dims: trailing ggml dimensions of size 1 do not count (numpy order: leading ones)
    ne = list(reversed([int(s) for s in shape]))
    for i in range(len(ne) - 1, 0, -1):
        if ne[i] != 1:
            return i + 1
    return 1


def tensor_nbytes(shape: Sequence[int], t: GGMLType | str | int) -> int:
    """Bytes of a tensor of NumPy-order ``shape`` stored as ggml type ``t``."""
    info = type_info(t)
    shape = tuple(int(s) for s in shape) or (1,)
    n = shape[-1]
    rows = 1
    for s in shape[:-1]:
        rows *= s
    return rows * (n // info.block_size) * info.type_size if n % info.block_size == 0 else -1


def _category(name: str) -> int:
    if name == "output.weight":
        return _OUTPUT
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return _TOKEN_EMBD
    for sub, cat in (("attn_qkv.weight", _QKV), ("attn_kv_b.weight", _KV_B), ("attn_v.weight", _V),
                     ("attn_k.weight", _K), ("attn_q.weight", _Q), ("attn_output.weight", _ATTN_OUT),
                     ("ffn_up", _UP), ("ffn_gate", _GATE), ("ffn_down", _DOWN)):
        if sub in name:
            return cat
    return _OTHER


def allows_quantization(name: str, shape: Sequence[int], *, quantize_output: bool = True) -> bool:
    """Whether llama.cpp would quantize this tensor at all (2-D/3-D ``*weight`` tensors, not norms or routers).

    Example:
        >>> allows_quantization("blk.0.attn_norm.weight", (4096,)), allows_quantization("blk.0.attn_q.weight", (8, 8))
        (False, True)
    """
    if _n_dims(shape) < 2 or not name.endswith("weight"):
        return False
    if not quantize_output and name == "output.weight":
        return False
    if name in _NEVER_QUANTIZED_EXACT:
        return False
    return not any(s in name for s in _NEVER_QUANTIZED)


def _layer_sort_key(name: str) -> tuple[int, str]:
    # llama_model_loader::weight_name_comparer: by block number (non-block tensors first), then by name
    m = re.match(r"blk\.(-?\d+)\.", name)
    return (int(m.group(1)) if m else -1, name)


def resolve_preset(preset: str | GGMLType) -> tuple[str, GGMLType, bool]:
    """Resolve a preset or plain type name to (name, default type, pure).

    Preset names (``"Q4_K_M"``, ``"q4_k_m"``, ``"IQ4_XS"``, ...) are matched case-insensitively.
    A :class:`GGMLType` or a ggml type spelled exactly as ggml names it in lower case (``"q4_K"``,
    ``"q4_0"``, ``"iq4_xs"``, ``"f16"``) means that type for every eligible tensor, without the
    preset's mixture rules (llama-quantize ``--pure``). Other spellings of ``Q3_K``/``Q4_K``/``Q5_K``
    are llama-quantize's aliases of the ``_M`` presets.

    Example:
        >>> resolve_preset("Q4_K")[0], resolve_preset("q4_k_m")[:2], resolve_preset("q4_K")
        ('Q4_K_M', ('Q4_K_M', <GGMLType.Q4_K: 12>), ('q4_K', <GGMLType.Q4_K: 12>, True))
    """
    if isinstance(preset, GGMLType):
        return type_info(preset).name, preset, True
    if not isinstance(preset, str):
        raise UnsupportedTypeError(f"preset must be a string or GGMLType, got {type(preset).__name__}")
    key = preset.strip()
    try:
        t = resolve_type(key)
        if type_info(t).name == key:
            return key, t, True
    except UnsupportedTypeError:
        pass
    up = key.upper()
    up = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}.get(up, up)  # llama-quantize's aliases
    if up in _DEFAULT_TYPE:
        return up, _DEFAULT_TYPE[up], False
    raise UnsupportedTypeError(
        f"unknown preset {preset!r}; presets: {', '.join(PRESETS)} (and the other llama.cpp file types "
        f"{', '.join(k for k in _DEFAULT_TYPE if k not in PRESETS)}), or a ggml type name such as 'q4_K' "
        f"for one type everywhere"
    )


class _State:
    def __init__(self, info: ModelInfo, has_imatrix: bool):
        self.info = info
        self.has_imatrix = has_imatrix
        self.n_attention_wv = 0
        self.i_attention_wv = 0
        self.n_ffn_down = self.n_ffn_gate = self.n_ffn_up = info.n_layer
        self.i_ffn_down = self.i_ffn_gate = self.i_ffn_up = 0
        self.has_tied_embeddings = True
        self.n_fallback = 0


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _fallback(qs: _State, name: str, ncols: int, target: GGMLType, warnings: list[str]) -> tuple[GGMLType, bool]:
    qk = type_info(target).block_size
    if ncols % qk == 0:
        return target, False
    qs.n_fallback += 1
    if target in _FALLBACK:
        ret = _FALLBACK[target]
    elif qk <= 32:
        ret = target
    else:
        raise UnsupportedTypeError(f"{name}: no tensor type fallback is defined for type {type_info(target).name}")
    if ncols % type_info(ret).block_size != 0:
        ret = T.F16
    warnings.append(f"{name}: row length {ncols} is not a multiple of {qk} (required by "
                    f"{type_info(target).name}), falling back to {type_info(ret).name}")
    return ret, True


def _get_type_impl(qs: _State, new_type: GGMLType, name: str, ne: list[int], ftype: str, cat: int) -> GGMLType:
    info = qs.info
    arch = info.arch
    n_expert = max(1, info.n_expert)

    def layer_info(i_layer: int, n_layer: int) -> tuple[int, int]:
        if n_expert > 1:
            m = re.match(r"blk\.(-?\d+)\.", name)
            if not m:
                raise GGQuantError(f"failed to determine layer for tensor {name}")
            i_layer = int(m.group(1))
            if i_layer < 0 or i_layer >= n_layer:
                raise GGQuantError(f"bad layer {i_layer} for tensor {name}: must be in [0, {n_layer})")
        return i_layer, n_layer

    iq2_family = ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M")
    if cat == _OUTPUT or (qs.has_tied_embeddings and cat == _TOKEN_EMBD):
        nx = ne[0]
        qk_k = type_info(new_type).block_size
        if ftype == "MXFP4_MOE" or arch == "falcon" or nx % qk_k != 0:
            new_type = T.Q8_0
        elif ftype in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
            new_type = T.Q5_K
        elif new_type != T.Q8_0:
            new_type = T.Q6_K
    elif ftype == "MXFP4_MOE":
        new_type = T.MXFP4 if len(ne) > 2 and ne[2] > 1 else T.Q8_0
    elif cat == _TOKEN_EMBD:
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            new_type = T.Q2_K
        elif ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            new_type = T.IQ3_S
        elif ftype in ("TQ1_0", "TQ2_0", "Q2_0"):
            new_type = T.Q4_K
    elif ftype in iq2_family:
        if cat in (_V, _QKV, _KV_B):
            if info.n_gqa >= 4 or info.n_expert >= 4:
                new_type = T.Q4_K
            else:
                new_type = T.IQ3_S if ftype in ("IQ2_S", "IQ2_M") else T.Q2_K
            qs.i_attention_wv += 1
        elif info.n_expert == 8 and cat == _K:
            new_type = T.Q4_K
        elif cat == _DOWN:
            if qs.i_ffn_down < qs.n_ffn_down // 8:
                new_type = T.IQ3_S if ftype in ("IQ2_S", "IQ2_M") else T.Q2_K
            qs.i_ffn_down += 1
        elif cat == _ATTN_OUT:
            if info.n_expert == 8:
                new_type = T.Q5_K
            elif ftype in ("IQ1_S", "IQ1_M"):
                new_type = T.IQ2_XXS
            elif ftype in ("IQ2_S", "IQ2_M"):
                new_type = T.IQ3_S
    elif cat in (_V, _QKV, _KV_B):
        gqa = info.n_gqa
        if ftype == "Q2_K":
            new_type = T.Q4_K if gqa >= 4 else T.Q3_K
        elif ftype == "Q2_K_S" and gqa >= 4:
            new_type = T.Q4_K
        elif ftype == "IQ3_XXS":
            new_type = T.Q4_K if gqa >= 4 else (T.IQ3_S if not qs.has_imatrix else T.IQ3_XXS)
        elif ftype in ("IQ3_XS", "IQ3_S") and gqa >= 4 or ftype == "IQ3_M":
            new_type = T.Q4_K
        elif ftype == "Q3_K_M":
            new_type = T.Q5_K if qs.i_attention_wv < 2 else T.Q4_K
        elif ftype == "Q3_K_L" or ftype in ("IQ4_NL", "IQ4_XS") and gqa >= 4:
            new_type = T.Q5_K
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(qs.i_attention_wv, qs.n_attention_wv):
            new_type = T.Q6_K
        elif ftype == "Q4_K_S" and qs.i_attention_wv < 4:
            new_type = T.Q5_K
        if info.is_70b and new_type in (T.Q3_K, T.Q4_K):
            new_type = T.Q5_K
        if info.n_expert == 8:
            new_type = T.Q8_0
        qs.i_attention_wv += 1
    elif cat == _K:
        if info.n_expert == 8:
            new_type = T.Q8_0
        elif ftype == "IQ3_XS":
            new_type = T.IQ3_XXS
        elif ftype == "IQ3_XXS":
            new_type = T.IQ2_S
    elif cat == _Q:
        if ftype == "IQ3_XS":
            new_type = T.IQ3_XXS
        elif ftype == "IQ3_XXS":
            new_type = T.IQ2_S
    elif cat == _DOWN:
        i_layer, n_layer = layer_info(qs.i_ffn_down, qs.n_ffn_down)
        if ftype == "Q2_K":
            new_type = T.Q3_K
        elif ftype == "Q2_K_S":
            if i_layer < n_layer // 8:
                new_type = T.Q4_K
        elif ftype == "IQ3_XXS" and not qs.has_imatrix:
            new_type = T.Q4_K if i_layer < n_layer // 8 else T.Q3_K
        elif ftype == "Q3_K_M":
            if i_layer < n_layer // 16:
                new_type = T.Q5_K
            elif arch != "falcon" or _use_more_bits(i_layer, n_layer):
                new_type = T.Q4_K
            else:
                new_type = T.Q3_K
        elif ftype == "IQ3_M" and (i_layer < n_layer // 8 or (info.n_expert == 8 and _use_more_bits(i_layer, n_layer))):
            new_type = T.Q4_K
        elif ftype == "Q3_K_L":
            new_type = T.Q4_K if arch == "falcon" else T.Q5_K
        elif ftype == "Q4_K_M":
            if arch == "falcon":
                new_type = (T.Q6_K if i_layer < n_layer // 16 else
                            T.Q5_K if _use_more_bits(i_layer, n_layer) else T.Q4_K)
            elif _use_more_bits(i_layer, n_layer):
                new_type = T.Q6_K
        elif i_layer < n_layer // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not qs.has_imatrix:
            new_type = T.Q5_K
        elif ftype == "Q5_K_M" and _use_more_bits(i_layer, n_layer):
            new_type = T.Q6_K
        elif ftype == "Q4_K_S" and arch != "falcon" and i_layer < n_layer // 8:
            new_type = T.Q5_K
        elif ftype in ("Q4_0", "Q5_0") and qs.has_imatrix and i_layer < n_layer // 8:
            new_type = T.Q4_1 if ftype == "Q4_0" else T.Q5_1
        qs.i_ffn_down += 1
    elif cat == _ATTN_OUT:
        if arch != "falcon":
            if info.n_expert == 8:
                if ftype in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M",
                             "IQ3_S", "IQ3_M", "IQ4_XS"):
                    new_type = T.Q5_K
            else:
                new_type = {"Q2_K": T.Q3_K, "IQ3_XXS": T.IQ3_S, "Q3_K_M": T.Q4_K, "Q3_K_L": T.Q5_K,
                            "IQ3_M": T.Q4_K}.get(ftype, new_type)
        elif ftype == "Q3_K_L":
            new_type = T.Q4_K
    elif cat == _QKV:  # unreachable (handled with attn_v above), kept in llama.cpp's order
        pass
    elif cat in (_GATE, _UP):
        if cat == _GATE:
            i_layer, n_layer = layer_info(qs.i_ffn_gate, qs.n_ffn_gate)
        else:
            i_layer, n_layer = layer_info(qs.i_ffn_up, qs.n_ffn_up)
        if ftype == "IQ3_XS" and n_layer // 8 <= i_layer < 7 * n_layer // 8:
            new_type = T.IQ3_XXS
        if cat == _GATE:
            qs.i_ffn_gate += 1
        else:
            qs.i_ffn_up += 1
    return new_type


def _requires_imatrix(name: str, t: GGMLType, ftype: str) -> bool:
    if name in ("token_embd.weight", "per_layer_token_embd.weight", "output.weight"):
        return False
    if t in (T.IQ3_XXS, T.IQ2_XXS, T.IQ2_XS, T.IQ2_S, T.IQ1_M, T.IQ1_S):
        return True
    return t == T.Q2_K and ftype == "Q2_K_S"


def parse_tensor_types(specs: Iterable[str] | Mapping[str, GGMLType | str] | None) -> list[tuple[re.Pattern[str], GGMLType]]:
    """Turn ``["attn_v=q8_0", "ffn_down=q6_k"]`` or ``{"attn_v": "q8_0"}`` into compiled (regex, type) overrides.

    Patterns are regular expressions searched in the GGUF tensor name, first match wins (as
    llama-quantize ``--tensor-type``).
    """
    if not specs:
        return []
    items: list[tuple[str, GGMLType | str]] = []
    if isinstance(specs, Mapping):
        items = list(specs.items())
    else:
        for s in specs:
            if isinstance(s, tuple):
                items.append(s)
                continue
            pat, sep, typ = str(s).rpartition("=")
            if not sep or not pat or not typ:
                raise GGQuantError(f"malformed tensor type override {s!r}: expected REGEX=TYPE, e.g. 'attn_v=q8_0'")
            items.append((pat, typ))
    out = []
    for pat, typ in items:  # type: ignore[assignment]
        try:
            rx = re.compile(pat)
        except re.error as e:
            raise GGQuantError(f"bad tensor type override pattern {pat!r}: {e}") from None
        out.append((rx, resolve_type(typ)))
    return out


def plan_quantization(
    tensors: Iterable[tuple[str, Sequence[int]] | tuple[str, Sequence[int], GGMLType | str | int]],
    preset: str | GGMLType,
    model: ModelInfo,
    *,
    has_imatrix: bool = False,
    tensor_types: Iterable[str] | Mapping[str, GGMLType | str] | None = None,
    token_embedding_type: GGMLType | str | None = None,
    output_tensor_type: GGMLType | str | None = None,
    pure: bool = False,
) -> Plan:
    """Choose the ggml type of every tensor as ``llama-quantize`` does for ``preset``.

    Args:
        tensors: (GGUF name, NumPy-order shape[, source type]) per tensor, e.g. ``("blk.0.attn_q.weight",
            (4096, 4096))``. The source type (default F32) is what a non-quantizable tensor keeps.
        preset: a llama.cpp preset (``"Q4_K_M"``, see :data:`PRESETS`) or a ggml type name
            (``"q4_K"``): that type for every eligible tensor, without mixture rules.
        model: architecture, layer, head and expert counts (:class:`ModelInfo`).
        has_imatrix: whether an importance matrix will be used (changes a few choices).
        tensor_types: overrides, ``["REGEX=TYPE", ...]`` or ``{regex: type}``, as ``--tensor-type``.
        token_embedding_type / output_tensor_type: as llama-quantize's options of the same names.
        pure: disable the mixture rules (llama-quantize ``--pure``).

    Returns:
        A :class:`Plan` (tensors in input order, ``file_type``, predicted sizes).

    Raises:
        UnsupportedTypeError: unknown preset or type.
        GGQuantError: malformed overrides, or a tensor whose layer cannot be determined in an MoE model.
    """
    name_, default_type, plain = resolve_preset(preset)
    ftype = _FTYPE_OF_TYPE.get(default_type, "F32") if plain else name_
    pure = pure or plain
    overrides = parse_tensor_types(tensor_types)
    tok_t = resolve_type(token_embedding_type) if token_embedding_type is not None else None
    out_t = resolve_type(output_tensor_type) if output_tensor_type is not None else None

    items = []
    for it in tensors:
        name, shape = it[0], tuple(int(s) for s in it[1])
        src = resolve_type(it[2]) if len(it) > 2 and it[2] is not None else T.F32  # type: ignore[misc,unused-ignore]
        items.append((name, shape, src))

    qs = _State(model, has_imatrix)
    for name, _, _ in items:
        cat = _category(name)
        if cat in (_V, _QKV, _KV_B):
            qs.n_attention_wv += 1
        if cat == _OUTPUT:
            qs.has_tied_embeddings = False

    warnings: list[str] = []
    chosen: dict[int, tuple[GGMLType, bool]] = {}
    order = sorted(range(len(items)), key=lambda i: _layer_sort_key(items[i][0]))
    for i in order:
        name, shape, src = items[i]
        ne = list(reversed(shape)) or [1]
        cat = _category(name)
        if not allows_quantization(name, shape):
            chosen[i] = (src, False)
            continue
        if tok_t is not None and cat == _TOKEN_EMBD:
            named = name == "per_layer_token_embd.weight" and any(rx.search(name) for rx, _ in overrides)
            if not named:
                chosen[i] = (tok_t, False)
                continue
        if out_t is not None and cat == _OUTPUT:
            chosen[i] = (out_t, False)
            continue
        new_type = default_type
        fell_back = False
        if type_info(default_type).is_quantized:
            manual = False
            for rx, t in overrides:
                if rx.search(name):
                    new_type, manual = t, True
                    break
            if not manual and not pure:
                new_type = _get_type_impl(qs, new_type, name, ne, ftype, cat)
            new_type, fell_back = _fallback(qs, name, ne[0], new_type, warnings)
        chosen[i] = (new_type, fell_back)

    planned = []
    for i, (name, shape, src) in enumerate(items):
        t, fb = chosen[i]
        nb = tensor_nbytes(shape, t)
        if nb < 0:
            raise GGQuantError(f"{name}: shape {shape} cannot be stored as {type_info(t).name}")
        planned.append(PlannedTensor(name, shape, t, nb, src, _requires_imatrix(name, t, ftype)
                                     and allows_quantization(name, shape), fb))
    return Plan(planned, name_, LLAMA_FTYPE[ftype], qs.n_fallback, warnings)


__all__ = [
    "LLAMA_FTYPE",
    "PRESETS",
    "ModelInfo",
    "Plan",
    "PlannedTensor",
    "allows_quantization",
    "parse_tensor_types",
    "plan_quantization",
    "resolve_preset",
    "tensor_nbytes",
]
