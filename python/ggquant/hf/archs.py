"""Architecture specs: Hugging Face tensor names and config keys -> GGUF tensors and metadata, following
llama.cpp's convert_hf_to_gguf.py (``LlamaModel`` and ``SmolLM3Model``, ``Qwen2Model``, ``Qwen2MoeModel``,
``Qwen3Model``, ``Qwen3MoeModel``, ``GemmaModel``, ``Gemma2Model``, ``Gemma3Model``, ``Olmo2Model``, ``GraniteModel``,
``Phi3MiniModel``); families kept in their own ``hf/arch_*.py`` modules subclass :class:`Arch` and register
in :data:`ARCH_CLASSES`.

Why our own tables and not the ``gguf`` package's (``gguf.TensorNameMap``, ``gguf.MODEL_ARCH``, ``Keys``):
``gguf`` is the oracle the tests read our files with, and names taken from it would make the
name checks circular; ``gguf`` also maps names for every architecture at once, where llama.cpp's
converter decides per architecture (Gemma 2's ``post_attention_layernorm`` is not Llama's ``ffn_norm``),
so its map alone does not give convert_hf_to_gguf.py's output. Each architecture here is instead
tested against convert_hf_to_gguf.py of a pinned llama.cpp (tests/test_reach_convert.py,
tests/test_convert.py), so upstream renames show up as failing tests; quantization and file I/O stay ours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import GGQuantError
from ..qtypes import GGMLType
from . import tokenizer as tk
from .checkpoint import Checkpoint, to_compute_dtype

U32, F32, BOOL, STR, ARR = tk.U32, tk.F32, tk.BOOL, tk.STR, tk.ARR

# HF architectures -> GGUF arch
SUPPORTED: dict[str, str] = {
    "LlamaForCausalLM": "llama", "LLaMAForCausalLM": "llama", "MistralForCausalLM": "llama",
    "MixtralForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "Qwen2MoeForCausalLM": "qwen2moe",
    "GemmaForCausalLM": "gemma", "Phi3ForCausalLM": "phi3", "Qwen3ForCausalLM": "qwen3",
    "GraniteMoeForCausalLM": "granitemoe", "GraniteMoeSharedForCausalLM": "granitemoe",
    "DeepseekV2ForCausalLM": "deepseek2", "DeepseekV3ForCausalLM": "deepseek2",
    "Qwen3MoeForCausalLM": "qwen3moe", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3", "SmolLM3ForCausalLM": "smollm3", "Olmo2ForCausalLM": "olmo2",
    "GraniteForCausalLM": "granite", "GptOssForCausalLM": "gpt-oss",
}
_LLAMA_LIKE = ("llama", "smollm3", "granite")  # convert_hf_to_gguf.py's LlamaModel and its subclasses

# head_dim as transformers' config classes fill it in when config.json has none: convert_hf_to_gguf.py reads
# config.json through AutoConfig and writes attention.key_length/value_length from it
_HEAD_DIM_DEFAULTS: dict[str, Callable[[dict[str, Any]], int]] = {
    "llama": lambda h: int(h["hidden_size"]) // int(h["num_attention_heads"]),
    "mistral": lambda h: int(h["hidden_size"]) // int(h["num_attention_heads"]),
    "qwen3": lambda h: 128,
    "gemma": lambda h: 256,
    "gemma2": lambda h: 256,
    "gemma3_text": lambda h: 256,
}
_GEMMA_NORM_SHIFT = ("gemma", "gemma2", "gemma3")  # GemmaRMSNorm multiplies by (1 + weight)

# (HF regex, GGUF name template); {0} = block id, {1} = "weight"/"bias"
_NAME_MAP: list[tuple[re.Pattern[str], str]] = [(re.compile(a), b) for a, b in [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", "blk.{0}.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "blk.{0}.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)", "blk.{0}.attn_q.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.k_proj\.(weight|bias)", "blk.{0}.attn_k.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.v_proj\.(weight|bias)", "blk.{0}.attn_v.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", "blk.{0}.attn_output.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)", "blk.{0}.attn_qkv.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.q_norm\.weight", "blk.{0}.attn_q_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.k_norm\.weight", "blk.{0}.attn_k_norm.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", "blk.{0}.ffn_gate.weight"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", "blk.{0}.ffn_up.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate_up_proj\.weight", "blk.{0}.ffn_up.weight"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", "blk.{0}.ffn_down.weight"),
    (r"model\.layers\.(\d+)\.block_sparse_moe\.gate\.weight", "blk.{0}.ffn_gate_inp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.gate\.weight", "blk.{0}.ffn_gate_inp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.shared_expert\.gate_proj\.weight", "blk.{0}.ffn_gate_shexp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.shared_expert\.up_proj\.weight", "blk.{0}.ffn_up_shexp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.shared_expert\.down_proj\.weight", "blk.{0}.ffn_down_shexp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.shared_expert_gate\.weight", "blk.{0}.ffn_gate_inp_shexp.weight"),
]]

# per-expert HF tensors stacked into one 3-D GGUF tensor
_EXPERT_MAP: list[tuple[re.Pattern[str], str]] = [(re.compile(a), b) for a, b in [
    (r"model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.w1\.weight", "blk.{0}.ffn_gate_exps.weight"),
    (r"model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.w2\.weight", "blk.{0}.ffn_down_exps.weight"),
    (r"model\.layers\.(\d+)\.block_sparse_moe\.experts\.(\d+)\.w3\.weight", "blk.{0}.ffn_up_exps.weight"),
    (r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.gate_proj\.weight", "blk.{0}.ffn_gate_exps.weight"),
    (r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.down_proj\.weight", "blk.{0}.ffn_down_exps.weight"),
    (r"model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.up_proj\.weight", "blk.{0}.ffn_up_exps.weight"),
]]
# already-stacked expert tensors (newer transformers layouts): (n_expert, rows, cols)
_FUSED_EXPERTS = re.compile(r"model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)(?:\.weight)?")

# architecture-specific names, tried before _NAME_MAP (Gemma 2/3 have a norm before and after each sublayer)
_ARCH_NAMES: dict[str, list[tuple[re.Pattern[str], str]]] = {
    a: [(re.compile(x), y) for x, y in [
        (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "blk.{0}.post_attention_norm.weight"),
        (r"model\.layers\.(\d+)\.pre_feedforward_layernorm\.weight", "blk.{0}.ffn_norm.weight"),
        (r"model\.layers\.(\d+)\.post_feedforward_layernorm\.weight", "blk.{0}.post_ffw_norm.weight"),
    ]] for a in ("gemma2", "gemma3")
}
_ARCH_NAMES["olmo2"] = [(re.compile(x), y) for x, y in [  # OLMo 2 normalizes after each sublayer only
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "blk.{0}.post_attention_norm.weight"),
    (r"model\.layers\.(\d+)\.post_feedforward_layernorm\.weight", "blk.{0}.post_ffw_norm.weight"),
]]

_IGNORED = (".attention.masked_bias", ".attention.bias", ".rotary_emb.inv_freq")
# the vision half of a multimodal checkpoint (llama.cpp writes it to a separate mmproj file)
_VISION_PREFIXES = ("vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector.")


@dataclass
class OutTensor:
    """One GGUF tensor and how to produce it from the checkpoint, part by part (experts one at a time)."""

    name: str
    shape: tuple[int, ...]
    # (stored values, safetensors dtype) or (raw blocks, GGMLType) per part; 3-D: one expert each (see convert.stream.run_pass)
    parts: list[Callable[[], tuple[np.ndarray, str | GGMLType]]]
    sources: list[str] = field(default_factory=list)
    force_f32: bool = False  # kept F32 by convert_hf_to_gguf.py (1-D, norms, biases, routers)
    stored_type: GGMLType | None = None  # its parts return (blocks, this type), known before reading (for the plan)

    def origin(self, src: Checkpoint | None) -> str:
        if src is None or not self.sources or self.sources[0] not in src:
            return "<generated>"
        return f"{src.origin(self.sources[0])}: {self.sources[0]}"


def _permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    # LlamaModel.permute: HF rotate-half rows -> interleaved pairs
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    out: np.ndarray = w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    return out


def _find(h: dict[str, Any], keys: list[str], default: Any = None) -> Any:
    for k in keys:
        if k in h and h[k] is not None:
            return h[k]
    return default


@dataclass
class Arch:
    #: (HF regex, GGUF name template) of a subclass, tried before the common tables
    arch_names: ClassVar[list[tuple[re.Pattern[str], str]]] = []
    hf_arch: str
    gguf_arch: str
    hparams: dict[str, Any]
    #: the ``quantization_config.quant_method`` whose tensors the converter copies as stored (gpt-oss: "mxfp4")
    kept_quant_method: ClassVar[str | None] = None

    @property
    def n_layer(self) -> int:
        return int(_find(self.hparams, ["n_layers", "num_hidden_layers", "n_layer", "num_layers"]))

    @property
    def n_head(self) -> int:
        return int(_find(self.hparams, ["num_attention_heads", "n_head", "n_heads"], 1))

    @property
    def n_head_kv(self) -> int:
        return int(_find(self.hparams, ["num_key_value_heads", "n_kv_heads", "n_head_kv"], self.n_head))

    @property
    def n_expert(self) -> int:
        return int(_find(self.hparams, ["num_local_experts", "num_experts", "n_routed_experts"], 0) or 0)

    @property
    def rope_params(self) -> dict[str, Any]:
        h = self.hparams
        rp = dict(h.get("rope_parameters", h.get("rope_scaling")) or {})
        theta = _find(h, ["global_rope_theta", "rope_global_theta", "rope_theta_global", "rope_theta", "rotary_emb_base"])
        if "full_attention" not in rp and "sliding_attention" not in rp:
            if "rope_theta" not in rp and theta is not None:
                rp["rope_theta"] = theta
            if "rope_type" not in rp and rp.get("type") is not None:
                rp["rope_type"] = rp["type"]
            for k in ("partial_rotary_factor", "original_max_position_embeddings"):
                v = _find(h, [k] if k != "partial_rotary_factor" else ["partial_rotary_factor", "rope_pct", "rope_percent"])
                if k not in rp and v is not None:
                    rp[k] = v
        return rp

    # -- tensors -----------------------------------------------------------------------------

    def transform(self, gguf_name: str, hf_name: str, raw: tuple[np.ndarray, str]) -> tuple[np.ndarray, str]:
        a, dtype = raw
        if self.gguf_arch in _LLAMA_LIKE:
            if hf_name.endswith(("q_proj.weight", "q_proj.bias")):
                a = _permute(a, self.n_head, self.n_head)
            elif hf_name.endswith(("k_proj.weight", "k_proj.bias")):
                a = _permute(a, self.n_head, self.n_head_kv)
        if self.gguf_arch in _GEMMA_NORM_SHIFT and hf_name.endswith("norm.weight"):
            a = to_compute_dtype(a, dtype)
            a, dtype = a + a.dtype.type(1), ("F16" if a.dtype == np.float16 else "F32")
        return a, dtype

    def skip(self, hf_name: str) -> bool:
        if hf_name.endswith(_IGNORED) or hf_name.startswith(_VISION_PREFIXES):
            return True
        return self.gguf_arch in ("gemma", "gemma2") and hf_name == "lm_head.weight"

    def tensors(self, src: Checkpoint) -> list[OutTensor]:
        out: list[OutTensor] = []
        stacks: dict[str, dict[int, str]] = {}
        stack_pos: dict[str, int] = {}
        out.extend(self.extra_tensors())
        for hf in src.names():
            name = hf.replace("language_model.", "") if "language_model." in hf else hf
            if self.skip(name):
                continue
            own = self.arch_tensors(src, hf, name)
            if own is not None:
                out.extend(own)
                continue
            m = None
            for rx, tmpl in _EXPERT_MAP:
                m = rx.fullmatch(name)
                if m:
                    g = tmpl.format(m.group(1))
                    if g not in stacks:
                        stacks[g] = {}
                        stack_pos[g] = len(out)
                        out.append(None)  # type: ignore[arg-type]  # placeholder, filled below
                    stacks[g][int(m.group(2))] = hf
                    break
            if m:
                continue
            fm = _FUSED_EXPERTS.fullmatch(name)
            if fm:
                out.extend(self._fused_experts(src, hf, int(fm.group(1)), fm.group(2)))
                continue
            name_map = self.arch_names + _ARCH_NAMES.get(self.gguf_arch, []) + _NAME_MAP
            gguf_name = next((tmpl.format(*mm.groups()) for rx, tmpl in name_map if (mm := rx.fullmatch(name))), None)
            if gguf_name is None:
                raise GGQuantError(f"{src.origin(hf)}: tensor {hf!r} has no GGUF name for architecture "
                                   f"{self.hf_arch} (arch {self.gguf_arch})")
            shape = src.shape(hf)
            out.append(OutTensor(gguf_name, shape, [partial(self._read, src, gguf_name, hf)], [hf],
                                 force_f32=_force_f32(gguf_name, shape)))
        n_exp = self.n_expert
        for g, by_id in stacks.items():
            ids = sorted(by_id)
            if ids != list(range(n_exp)):
                raise GGQuantError(f"{src.origin(by_id[ids[0]])}: {g} needs experts 0..{n_exp - 1}, found {ids}")
            names = [by_id[i] for i in ids]
            shapes = {src.shape(n) for n in names}
            if len(shapes) != 1:
                raise GGQuantError(f"{src.origin(names[0])}: experts of {g} differ in shape: {sorted(shapes)}")
            shape = (n_exp, *shapes.pop())
            out[stack_pos[g]] = OutTensor(g, shape, [partial(self._read, src, g, n) for n in names], names)
        return out

    def arch_tensors(self, src: Checkpoint, hf_name: str, name: str) -> list[OutTensor] | None:
        """The GGUF tensors an architecture makes of ``hf_name`` itself (``name``: without ``language_model.``),
        or None for the common tables below."""
        return None

    def _read(self, src: Checkpoint, gguf_name: str, hf_name: str) -> tuple[np.ndarray, str]:
        return self.transform(gguf_name, hf_name, src.get_raw(hf_name))

    def _fused_experts(self, src: Checkpoint, hf: str, bid: int, kind: str) -> list[OutTensor]:
        shape = src.shape(hf)
        if len(shape) != 3:
            raise GGQuantError(f"{src.origin(hf)}: {hf} should be 3-D (experts, rows, cols), got {shape}")
        ne = shape[0]
        if kind == "down_proj":
            return [OutTensor(f"blk.{bid}.ffn_down_exps.weight", shape,
                              [partial(_index, src, hf, i) for i in range(ne)], [hf])]
        if shape[1] % 2:
            raise GGQuantError(f"{src.origin(hf)}: {hf} has an odd number of gate+up rows {shape[1]}")
        f = shape[1] // 2
        sub = (ne, f, shape[2])
        return [OutTensor(f"blk.{bid}.ffn_gate_exps.weight", sub, [partial(_index, src, hf, (i, slice(0, f))) for i in range(ne)], [hf]),
                OutTensor(f"blk.{bid}.ffn_up_exps.weight", sub, [partial(_index, src, hf, (i, slice(f, None))) for i in range(ne)], [hf])]

    def extra_tensors(self) -> list[OutTensor]:
        rp = self.rope_params.get("full_attention", self.rope_params)
        h = self.hparams
        if self.gguf_arch == "llama" and str(rp.get("rope_type", "")).lower() == "llama3":
            base = rp.get("rope_theta", 10000.0)
            dim = h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"]
            try:  # the factors are computed in float32 as torch does in convert_hf_to_gguf.py
                import torch

                freqs = list(1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)))
            except ImportError:
                freqs = list(np.float32(1.0) / (np.float32(base) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))))
            factor = rp.get("factor", 8.0)
            lo, hi = rp.get("low_freq_factor", 1.0), rp.get("high_freq_factor", 4.0)
            old = rp.get("original_max_position_embeddings", 8192)
            lo_w, hi_w = old / lo, old / hi
            f = []
            for fr in freqs:
                wl = 2 * math.pi / fr
                if wl < hi_w:
                    f.append(1.0)
                elif wl > lo_w:
                    f.append(float(factor))
                else:
                    s = (old / wl - lo) / (hi - lo)
                    f.append(float(1 / ((1 - s) / factor + s)))
            arr = np.asarray(f, dtype=np.float32)
            return [OutTensor("rope_freqs.weight", arr.shape, [lambda: (arr, "F32")], force_f32=True)]
        if self.gguf_arch == "phi3":
            long_f, short_f = self.rope_params.get("long_factor"), self.rope_params.get("short_factor")
            if long_f:
                lf, sf = np.asarray(long_f, np.float32), np.asarray(short_f, np.float32)
                return [OutTensor("rope_factors_long.weight", lf.shape, [lambda: (lf, "F32")], force_f32=True),
                        OutTensor("rope_factors_short.weight", sf.shape, [lambda: (sf, "F32")], force_f32=True)]
        return []

    # -- metadata ----------------------------------------------------------------------------

    def hparam_entries(self, file_type: int) -> list[tk.Entry]:
        h = self.hparams
        a = self.gguf_arch
        e: list[tk.Entry] = []

        def add(key: str, v: Any, t: int, sub: int | None = None) -> None:
            e.append((f"{a}.{key}" if not key.startswith("general.") else key, v, t, sub))

        if a in ("gemma", "gemma2"):  # GemmaModel / Gemma2Model.set_gguf_parameters
            add("context_length", int(h["max_position_embeddings"]), U32)
            add("embedding_length", int(h["hidden_size"]), U32)
            add("block_count", self.n_layer, U32)
            add("feed_forward_length", int(h["intermediate_size"]), U32)
            add("attention.head_count", int(h["num_attention_heads"]), U32)
            add("attention.head_count_kv", self.n_head_kv, U32)
            add("attention.layer_norm_rms_epsilon", float(h["rms_norm_eps"]), F32)
            add("attention.key_length", int(h["head_dim"]), U32)
            add("attention.value_length", int(h["head_dim"]), U32)
            add("general.file_type", file_type, U32)
            if a == "gemma2":
                add("attn_logit_softcapping", float(h["attn_logit_softcapping"]), F32)
                add("final_logit_softcapping", float(h["final_logit_softcapping"]), F32)
                add("attention.sliding_window", int(h["sliding_window"]), U32)
            return e
        if a == "phi3":
            n_embd = int(_find(h, ["hidden_size", "n_embd"]))
            n_head = self.n_head
            rp = self.rope_params
            orig = rp.get("original_max_position_embeddings")
            if orig is None:
                raise GGQuantError("config.json: Phi3 needs original_max_position_embeddings")
            rope_dims = int(rp.get("partial_rotary_factor", 1.0) * n_embd) // n_head
            add("context_length", int(_find(h, ["n_positions", "max_position_embeddings"])), U32)
            add("rope.scaling.original_context_length", int(orig), U32)
            add("embedding_length", n_embd, U32)
            add("feed_forward_length", int(h["intermediate_size"]), U32)
            add("block_count", self.n_layer, U32)
            add("attention.head_count", n_head, U32)
            add("attention.head_count_kv", self.n_head_kv, U32)
            add("attention.layer_norm_rms_epsilon", float(h["rms_norm_eps"]), F32)
            add("rope.dimension_count", rope_dims, U32)
            add("rope.freq_base", float(rp.get("full_attention", rp)["rope_theta"]), F32)
            add("general.file_type", file_type, U32)
            add("attention.sliding_window", int(h.get("sliding_window") or 0), U32)
            return e
        # TextModel.set_gguf_parameters
        add("block_count", self.n_layer, U32)
        for key, names in (("context_length", ["max_position_embeddings", "n_ctx", "n_positions", "max_length",
                                                "max_sequence_length", "model_max_length"]),
                           ("embedding_length", ["hidden_size", "n_embd", "dim"]),
                           ("feed_forward_length", ["prefix_dense_intermediate_size", "dense_intermediate_size",
                                                    "intermediate_size", "n_inner", "hidden_dim"]),
                           ("attention.head_count", ["num_attention_heads", "n_head", "n_heads"]),
                           ("attention.head_count_kv", ["num_key_value_heads", "n_kv_heads"])):
            v = _find(h, names)
            if v is not None:
                add(key, int(v), U32)
        if h.get("is_causal") is False:
            add("attention.causal", False, BOOL)
        rp = self.rope_params.get("full_attention", self.rope_params)
        rt = rp.get("rope_type")
        if rt is not None:
            factor = rp.get("factor")
            if rt == "linear" and factor is not None:
                add("rope.scaling.type", "linear", STR)
                add("rope.scaling.factor", float(factor), F32)
            elif rt == "yarn" and factor is not None:
                add("rope.scaling.type", "yarn", STR)
                add("rope.scaling.factor", float(factor), F32)
                add("rope.scaling.original_context_length", int(rp["original_max_position_embeddings"]), U32)
                for k, key in (("extrapolation_factor", "rope.scaling.yarn_ext_factor"),
                               ("attention_factor", "rope.scaling.yarn_attn_factor"),
                               ("beta_fast", "rope.scaling.yarn_beta_fast"), ("beta_slow", "rope.scaling.yarn_beta_slow")):
                    v = rp.get(k, rp.get("attn_factor") if k == "attention_factor" else None)
                    if v is not None:
                        add(key, float(v), F32)
            elif rt in ("su", "longrope"):
                add("rope.scaling.type", "longrope", STR)
        if a == "gemma3":  # Gemma3Model.set_gguf_parameters sets these again (first position, last value)
            rp = {**rp, "rope_theta": rp.get("rope_theta", 1_000_000.0)}
        if rp.get("rope_theta") is not None:
            add("rope.freq_base", float(rp["rope_theta"]), F32)
        swa_theta = (self.rope_params.get("sliding_attention") or {}).get("rope_theta")
        if swa_theta is not None:
            add("rope.freq_base_swa", float(swa_theta), F32)
        v = _find(h, ["rms_norm_eps", "norm_eps"])
        if v is not None:
            add("attention.layer_norm_rms_epsilon", float(v), F32)
        v = _find(h, ["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])
        if v is not None:
            add("attention.layer_norm_epsilon", float(v), F32)
        v = _find(h, ["num_local_experts", "num_experts", "n_routed_experts"])
        if v is not None:
            add("expert_count", int(v), U32)
        v = _find(h, ["num_experts_per_tok", "num_experts_per_token", "top_k_experts"])
        if v is not None:
            add("expert_used_count", int(v), U32)
        if h.get("head_dim") is not None:
            add("attention.key_length", int(h["head_dim"]), U32)
            add("attention.value_length", int(h["head_dim"]), U32)
        add("general.file_type", file_type, U32)
        if a in _LLAMA_LIKE:
            add("vocab_size", int(h["vocab_size"]), U32)
            add("rope.dimension_count", int(h.get("head_dim") or h["hidden_size"] // h["num_attention_heads"]), U32)
        if a == "granite":  # GraniteModel: the *_multiplier parameters as *_scale keys, when set
            for key, name in (("attention.scale", "attention_multiplier"), ("embedding_scale", "embedding_multiplier"),
                              ("residual_scale", "residual_multiplier"), ("logit_scale", "logits_scaling")):
                if h.get(name):
                    add(key, float(h[name]), F32)
        if a == "gemma3":
            if h.get("final_logit_softcapping"):
                add("final_logit_softcapping", float(h["final_logit_softcapping"]), F32)
            if h.get("sliding_window_pattern") != 1:
                add("attention.sliding_window", int(h["sliding_window"]), U32)
        if a in ("qwen2moe", "qwen3moe"):
            if h.get("moe_intermediate_size") is not None:
                add("expert_feed_forward_length", int(h["moe_intermediate_size"]), U32)
            if h.get("shared_expert_intermediate_size") is not None:
                add("expert_shared_feed_forward_length", int(h["shared_expert_intermediate_size"]), U32)
        return e

    def early_entries(self) -> list[tk.Entry]:
        """Keys convert_hf_to_gguf.py writes while generating tensors, i.e. right after
        ``general.architecture`` (Phi-3's LongRoPE attention factor)."""
        h, rp = self.hparams, self.rope_params
        if self.gguf_arch != "phi3" or not rp.get("long_factor"):
            return []
        orig = rp["original_max_position_embeddings"]
        scale = int(_find(h, ["n_positions", "max_position_embeddings"])) / orig
        if str(rp.get("rope_type", "")).lower() in ("su", "longrope"):
            af = math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0
        else:
            af = 0.1 * math.log(scale) + 1.0 if scale > 1.0 else 1.0
        return [("phi3.rope.scaling.attn_factor", float(af), F32, None)]

    def vocab_entries(self, model_dir: Path | None) -> list[tk.Entry]:
        if model_dir is None:
            return []
        h = self.hparams
        has_spm = (model_dir / "tokenizer.model").is_file()
        has_bpe = (model_dir / "tokenizer.json").is_file()
        if not has_spm and not has_bpe:
            return []
        tc_path = model_dir / "tokenizer_config.json"
        tc = tk._read_json(tc_path) if tc_path.is_file() else {}
        a = self.gguf_arch
        e: list[tk.Entry] = []
        if a in _LLAMA_LIKE:
            if tc.get("add_prefix_space") is not None:
                e.append(("tokenizer.ggml.add_space_prefix", bool(tc["add_prefix_space"]), BOOL, None))
            if has_spm:
                e += tk.spm_vocab(model_dir, h)
            elif tk.is_llama_hf(model_dir):
                e += tk.llama_hf_vocab(model_dir, h)
            else:
                e += tk.bpe_vocab(model_dir, h)
            if h.get("vocab_size", 32000) == 49152:
                e.append(("tokenizer.ggml.add_bos_token", False, BOOL, None))
        elif a == "gemma":
            e += tk.spm_vocab(model_dir, h)
            e += tk.special_vocab(model_dir, types=("prefix", "suffix", "middle", "fsep", "eot"),
                                  fixed_ids={"eot": 107}, chat_template=False)
            e.append(("tokenizer.ggml.add_space_prefix", False, BOOL, None))
        elif a in ("gemma2", "gemma3") and has_spm:
            e += tk.spm_vocab(model_dir, h)
            e.append(("tokenizer.ggml.add_space_prefix", False, BOOL, None))
        elif a == "gemma3":  # Gemma3Model falls back to tokenizer.json's BPE
            e += tk.bpe_vocab(model_dir, h)
        elif a == "gemma2":
            raise GGQuantError(f"{model_dir}: Gemma 2 needs tokenizer.model (llama.cpp reads its SentencePiece "
                               f"vocabulary); only tokenizer.json was found; pass --tokenizer-dir DIR")
        elif a == "phi3":
            if tc.get("tokenizer_class") == "GPT2Tokenizer" or not has_spm:
                e += tk.bpe_vocab(model_dir, h)
            else:
                e += tk.spm_vocab(model_dir, h, phi3=True)
        else:  # qwen2, qwen2moe, qwen3, qwen3moe
            e += tk.spm_vocab(model_dir, h) if has_spm else tk.bpe_vocab(model_dir, h)
        return e


def _index(src: Checkpoint, name: str, idx: Any) -> tuple[np.ndarray, str]:
    a, dtype = src.get_raw(name)
    return a[idx], dtype


def _force_f32(name: str, shape: tuple[int, ...]) -> bool:
    return (len(shape) <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight")
            or re.search(r"\.ffn_gate_inp(_shexp)?\.weight$", name) is not None)


#: GGUF arch -> the Arch subclass that handles it (hf/arch_*.py register theirs with :func:`register`)
ARCH_CLASSES: dict[str, type[Arch]] = {}


def register(gguf_arch: str) -> Callable[[type[Arch]], type[Arch]]:
    """Class decorator: ``gguf_arch`` is converted by the decorated :class:`Arch` subclass."""
    def deco(cls: type[Arch]) -> type[Arch]:
        ARCH_CLASSES[gguf_arch] = cls
        return cls
    return deco


def kept_quant_method(hparams: dict[str, Any]) -> str | None:
    """The quantization the architecture of ``hparams`` converts as stored (see ``Arch.kept_quant_method``)."""
    archs = hparams.get("architectures") or []
    cls = ARCH_CLASSES.get(SUPPORTED.get(archs[0], "")) if archs else None
    return cls.kept_quant_method if cls is not None else None


def arch_for(hparams: dict[str, Any]) -> Arch:
    archs = hparams.get("architectures") or []
    hf = archs[0] if archs else None
    if hf not in SUPPORTED:
        raise GGQuantError(f"config.json: architecture {hf!r} is not supported; supported: "
                           f"{', '.join(sorted(SUPPORTED))}. To ask for another one, open an issue with the "
                           f"model's Hugging Face id and its config.json")
    if "text_config" in hparams:
        hparams = {**hparams, **hparams["text_config"]}
    if SUPPORTED[hf] == "granite":  # GraniteModel ignores head_dim
        hparams = {k: v for k, v in hparams.items() if k != "head_dim"}
    default = _HEAD_DIM_DEFAULTS.get(str(hparams.get("model_type")))
    if hparams.get("head_dim") is None and default is not None:
        hparams = {**hparams, "head_dim": default(hparams)}
    return ARCH_CLASSES.get(SUPPORTED[hf], Arch)(hf, SUPPORTED[hf], hparams)
