"""DeepSeek-V2 / V3 (``DeepseekV2ForCausalLM``, ``DeepseekV3ForCausalLM``), as llama.cpp's convert_hf_to_gguf.py
(``DeepseekV2Model``, GGUF arch ``deepseek2``) converts them.

Multi-head latent attention (MLA): queries through a low-rank ``q_a_proj``/``q_b_proj`` pair (or one ``q_proj``
when ``q_lora_rank`` is null, as in V2-Lite), keys and values through ``kv_a_proj_with_mqa`` and ``kv_b_proj``.
llama.cpp runs MLA as multi-query attention over the compressed cache (``head_count_kv`` 1, key length
``kv_lora_rank + qk_rope_head_dim``), so ``kv_b_proj`` ``(heads * (nope + v), kv_lora_rank)`` is split per
head into ``attn_k_b`` ``(heads, kv_lora_rank, nope)`` (transposed) and ``attn_v_b`` ``(heads, v, kv_lora_rank)``.
The first ``first_k_dense_replace`` layers have a dense FFN, the others routed experts (stacked into 3-D
tensors), shared experts and, in V3, the router's score bias ``e_score_correction_bias`` (``exp_probs_b``).
Multi-token-prediction layers (past ``num_hidden_layers``) are left out, as llama.cpp does.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import numpy as np

from ..errors import GGQuantError
from . import tokenizer as tk
from .archs import Arch, OutTensor, register
from .checkpoint import Checkpoint

U32, F32, BOOL = tk.U32, tk.F32, tk.BOOL

_KV_B = re.compile(r"model\.layers\.(\d+)\.self_attn\.kv_b_proj\.weight")
_LAYER = re.compile(r"model\.layers\.(\d+)\.")
# TextModel.set_gguf_parameters: the router's score function -> llama_expert_gating_func_type
_GATING = {"softmax": 1, "sigmoid": 2, "sqrtsoftplus": 4}
_SCORE_KEYS = ("score_function", "scoring_func", "score_func", "moe_router_activation", "moe_router_activation_func",
               "expert_selection_fn")


@register("deepseek2")
class DeepseekV2Arch(Arch):
    """``DeepseekV2Model``: MLA attention, leading dense layers, routed and shared experts."""

    arch_names = [(re.compile(a), b) for a, b in [
        (r"model\.layers\.(\d+)\.self_attn\.q_a_proj\.weight", "blk.{0}.attn_q_a.weight"),
        (r"model\.layers\.(\d+)\.self_attn\.q_a_layernorm\.weight", "blk.{0}.attn_q_a_norm.weight"),
        (r"model\.layers\.(\d+)\.self_attn\.q_b_proj\.weight", "blk.{0}.attn_q_b.weight"),
        (r"model\.layers\.(\d+)\.self_attn\.kv_a_proj_with_mqa\.weight", "blk.{0}.attn_kv_a_mqa.weight"),
        (r"model\.layers\.(\d+)\.self_attn\.kv_a_layernorm\.weight", "blk.{0}.attn_kv_a_norm.weight"),
        (r"model\.layers\.(\d+)\.mlp\.gate\.e_score_correction_bias", "blk.{0}.exp_probs_b.bias"),
        (r"model\.layers\.(\d+)\.mlp\.shared_experts\.gate_proj\.weight", "blk.{0}.ffn_gate_shexp.weight"),
        (r"model\.layers\.(\d+)\.mlp\.shared_experts\.up_proj\.weight", "blk.{0}.ffn_up_shexp.weight"),
        (r"model\.layers\.(\d+)\.mlp\.shared_experts\.down_proj\.weight", "blk.{0}.ffn_down_shexp.weight"),
    ]]

    def __post_init__(self) -> None:
        # DeepseekV2Config / DeepseekV3Config fill in head_dim = qk_rope_head_dim (convert_hf_to_gguf.py reads
        # config.json through them), and DeepseekV2Model defaults rms_norm_eps to 1e-6
        h = self.hparams
        self.hparams = {**h, "head_dim": h.get("head_dim") or h.get("qk_rope_head_dim"),
                        "rms_norm_eps": h.get("rms_norm_eps", 1e-6)}

    @property
    def n_head_kv(self) -> int:  # MLA runs as multi-query attention in llama.cpp
        return 1

    def skip(self, hf_name: str) -> bool:
        m = _LAYER.match(hf_name)
        if m is not None and int(m.group(1)) >= self.n_layer:  # multi-token-prediction layers
            return True
        if self.hparams.get("tie_word_embeddings") and hf_name in ("lm_head.weight", "model.lm_head.weight"):
            return True
        return super().skip(hf_name)

    def arch_tensors(self, src: Checkpoint, hf_name: str, name: str) -> list[OutTensor] | None:
        m = _KV_B.fullmatch(name)
        if m is None:
            return None
        h = self.hparams
        nope, v = int(h["qk_nope_head_dim"]), int(h["v_head_dim"])
        rows, rank = src.shape(hf_name)
        if rows % (nope + v):
            raise GGQuantError(f"{src.origin(hf_name)}: {hf_name} has {rows} rows, not a multiple of "
                               f"qk_nope_head_dim + v_head_dim = {nope + v}")
        heads = rows // (nope + v)
        bid = m.group(1)
        return [OutTensor(f"blk.{bid}.attn_k_b.weight", (heads, rank, nope),
                          [partial(_split_kv_b, src, hf_name, heads, nope, "k")], [hf_name]),
                OutTensor(f"blk.{bid}.attn_v_b.weight", (heads, v, rank),
                          [partial(_split_kv_b, src, hf_name, heads, nope, "v")], [hf_name])]

    def hparam_entries(self, file_type: int) -> list[tk.Entry]:
        h = self.hparams
        a = self.gguf_arch
        e = Arch(self.hf_arch, a, {**h, "num_key_value_heads": 1}).hparam_entries(file_type)
        # TextModel.set_gguf_parameters writes the expert groups and the score function after expert_used_count
        groups: list[tk.Entry] = []
        for key, name in (("expert_group_count", "n_group"), ("expert_group_used_count", "topk_group")):
            if h.get(name) is not None:
                groups.append((f"{a}.{key}", int(h[name]), U32, None))
        score = next((h[k] for k in _SCORE_KEYS if h.get(k) is not None), None)
        if score is not None:
            if score not in _GATING:
                raise GGQuantError(f"config.json: unsupported expert score function {score!r} "
                                   f"(supported: {', '.join(_GATING)})")
            groups.append((f"{a}.expert_gating_func", _GATING[score], U32, None))
        at = next(i for i, x in enumerate(e) if x[0] in (f"{a}.attention.key_length", "general.file_type"))
        e[at:at] = groups

        def add(key: str, value: Any, t: int) -> None:
            e.append((f"{a}.{key}", value, t, None))

        has_moe = h.get("n_routed_experts") is not None
        dense = h.get("first_k_dense_replace")
        add("leading_dense_block_count", int(dense if dense is not None else 0 if has_moe else self.n_layer), U32)
        add("vocab_size", int(h["vocab_size"]), U32)
        if h.get("q_lora_rank") is not None:
            add("attention.q_lora_rank", int(h["q_lora_rank"]), U32)
        kv_rank, rope_dim = int(h.get("kv_lora_rank", 512)), int(h["qk_rope_head_dim"])
        add("attention.kv_lora_rank", kv_rank, U32)
        add("attention.key_length", kv_rank + rope_dim, U32)
        add("attention.value_length", kv_rank, U32)
        add("attention.key_length_mla", int(h["qk_nope_head_dim"]) + rope_dim, U32)
        add("attention.value_length_mla", int(h["v_head_dim"]), U32)
        ff = h.get("moe_intermediate_size", h.get("intermediate_size"))
        if ff is None:
            raise GGQuantError("config.json: DeepSeek needs moe_intermediate_size or intermediate_size")
        add("expert_feed_forward_length", int(ff), U32)
        if has_moe:
            add("expert_count", int(h["n_routed_experts"]), U32)
        add("expert_shared_count", int(h.get("n_shared_experts", 0)), U32)
        if h.get("routed_scaling_factor") is not None:
            add("expert_weights_scale", float(h["routed_scaling_factor"]), F32)
        if h.get("norm_topk_prob"):
            add("expert_weights_norm", True, BOOL)
        add("rope.dimension_count", rope_dim, U32)
        mscale_all = self.rope_params.get("mscale_all_dim")
        if mscale_all is not None:  # llama.cpp's [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]: 0.1 * mscale_all_dim
            add("rope.scaling.yarn_log_multiplier", 0.1 * float(mscale_all), F32)
        return e


def _split_kv_b(src: Checkpoint, name: str, heads: int, nope: int, which: str) -> tuple[np.ndarray, str]:
    # (heads * (nope + v), rank) -> per head (nope + v, rank): attn_k_b is the first nope rows transposed
    # to (rank, nope), attn_v_b the other v rows
    a, dtype = src.get_raw(name)
    per_head = np.asarray(a).reshape(heads, -1, a.shape[-1])
    part = per_head[:, :nope].transpose(0, 2, 1) if which == "k" else per_head[:, nope:]
    return np.ascontiguousarray(part), dtype
