"""Granite MoE and DeepSeek-V2/V3 (issue 12) against llama.cpp's two steps: tiny random transformers models with a
trained BPE vocabulary convert as convert_hf_to_gguf.py converts them (metadata key by key, tensors byte for
byte), run in llama.cpp like in transformers (F32 logits), and give llama_model_quantize's Q4_K_M file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ggquant
import hf_models
from reach_oracles import assert_like_llama_cpp, require_two_steps, tensors

require_two_steps()
import torch  # noqa: E402
import transformers as tr  # noqa: E402

V = 384
# llama.cpp takes a DeepSeek-V2 without q_lora_rank for V2-Lite by its depth only (26 or 27 layers)
_LITE_LAYERS = 26


def _build(arch: str, d: Path):
    """A tiny random model (hidden 64, 4 experts, 3 layers but for V2-Lite) with non-trivial norms and router biases."""
    torch.manual_seed(0)
    d.mkdir(parents=True, exist_ok=True)
    common = dict(vocab_size=V, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=256,
                  rms_norm_eps=1e-6, bos_token_id=V - 4, eos_token_id=V - 3)
    if arch in ("granitemoe", "granitemoe-shared"):
        g = dict(common, num_key_value_heads=2, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
                 attention_multiplier=0.2, embedding_multiplier=6.0, residual_multiplier=0.5, logits_scaling=4.0)
        if arch == "granitemoe":
            model = tr.GraniteMoeForCausalLM(tr.GraniteMoeConfig(**g, tie_word_embeddings=True))
        else:
            model = tr.GraniteMoeSharedForCausalLM(tr.GraniteMoeSharedConfig(**g, shared_intermediate_size=48))
    else:
        mla = dict(common, num_key_value_heads=4, intermediate_size=96, moe_intermediate_size=32, n_routed_experts=4,
                   n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1, kv_lora_rank=32,
                   qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
        yarn = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 64,
                "beta_fast": 32.0, "beta_slow": 1.0}
        if arch == "deepseek-v2-lite":  # one q_proj, softmax router, V2-Lite's mscale 0.707
            model = tr.DeepseekV2ForCausalLM(tr.DeepseekV2Config(
                **dict(mla, num_hidden_layers=_LITE_LAYERS), q_lora_rank=None, topk_method="greedy",
                scoring_func="softmax", routed_scaling_factor=1.0, norm_topk_prob=False,
                rope_parameters={**yarn, "mscale": 0.707, "mscale_all_dim": 0.707}))
        elif arch == "deepseek-v2":  # DeepSeek-V2 proper: low-rank queries, no RoPE scaling
            model = tr.DeepseekV2ForCausalLM(tr.DeepseekV2Config(
                **mla, q_lora_rank=24, topk_method="greedy", scoring_func="softmax", routed_scaling_factor=1.5))
        elif arch == "deepseek-v3":  # sigmoid router with score bias, expert groups, normalized top-k
            model = tr.DeepseekV3ForCausalLM(tr.DeepseekV3Config(
                **mla, q_lora_rank=24, n_group=2, topk_group=1, norm_topk_prob=True, routed_scaling_factor=2.5,
                scoring_func="sigmoid", topk_method="noaux_tc", rope_parameters={**yarn, "mscale": 1.0, "mscale_all_dim": 1.0}))
        else:
            raise ValueError(arch)
    with torch.no_grad():
        for n, p in model.state_dict().items():
            if "norm" in n:
                p.normal_(1.0, 0.1)
            elif "e_score_correction_bias" in n:  # zeros at init: routing would not depend on it
                p.normal_(0.0, 0.5)
    hf_models.bpe_tokenizer(d, V, hf_models.LLAMA3_REGEX, bos=True)
    model.eval().save_pretrained(d)
    return model


@pytest.mark.parametrize("arch", ["granitemoe", "granitemoe-shared", "deepseek-v2-lite", "deepseek-v2", "deepseek-v3"])
def test_moe_arch_matches_llama_cpp_and_transformers(arch, tmp_path):
    d = tmp_path / arch
    model = _build(arch, d)
    assert_like_llama_cpp(d, model, tmp_path, pre="llama-bpe")


def test_deepseek_keeps_what_llama_cpp_runs(tmp_path):
    """MLA as llama.cpp runs it: one KV head, kv_b_proj split per head into attn_k_b (transposed) and attn_v_b;
    the dense leading layer, the score bias and no multi-token-prediction layer."""
    d = tmp_path / "v3"
    model = _build("deepseek-v3", d)
    # a multi-token-prediction layer past num_hidden_layers, as DeepSeek-V3's checkpoints carry one
    with ggquant.safe_open(d / "model.safetensors") as sd:
        extra = {k: np.array(sd[k]) for k in sd.keys()}
    extra["model.layers.3.input_layernorm.weight"] = extra["model.norm.weight"]
    ggquant.save_file(extra, d / "model.safetensors")
    r = ggquant.convert(d, tmp_path / "v3.gguf", "F32", quiet=True)
    assert r.metadata["deepseek2.attention.head_count_kv"] == 1
    assert r.metadata["deepseek2.leading_dense_block_count"] == 1
    t = tensors(tmp_path / "v3.gguf")
    assert not [n for n in t if n.startswith("blk.3.")]
    assert "blk.0.ffn_up.weight" in t and "blk.0.ffn_up_exps.weight" not in t and "blk.1.exp_probs_b.bias" in t
    kv_b = model.state_dict()["model.layers.1.self_attn.kv_b_proj.weight"].numpy().reshape(4, 32, 32)
    k_b = kv_b[:, :16].transpose(0, 2, 1)  # (heads, kv_lora_rank, nope)
    assert t["blk.1.attn_k_b.weight"][1] == k_b.astype("<f4").tobytes()
    assert t["blk.1.attn_v_b.weight"][1] == kv_b[:, 16:].astype("<f4").tobytes()


def test_deepseek_unknown_score_function_is_named(tmp_path):
    d = tmp_path / "v3"
    _build("deepseek-v3", d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "scoring_func": "relu"}))
    with pytest.raises(ggquant.GGQuantError, match=r"config\.json: unsupported expert score function 'relu'"):
        ggquant.convert(d, tmp_path / "x.gguf", "F32", quiet=True)
    assert not (tmp_path / "x.gguf").exists()


def test_granite_moe_state_dict_in_memory_names(tmp_path):
    """A state dict as transformers holds it (experts.gate_up_proj, router.weight, not the stored input_linear,
    router.layer) converts to the same tensors as the saved directory; ggquant.quality's inverse map (GGUF ->
    HF parameters) maps the stacked experts back to row halves of gate_up_proj."""
    from ggquant.quality.names import gguf_tensor_map

    d = tmp_path / "g"
    model = _build("granitemoe-shared", d)
    cfg = json.loads((d / "config.json").read_text())
    sd = model.state_dict()
    assert "model.layers.1.block_sparse_moe.experts.gate_up_proj" in sd
    ggquant.convert(sd, tmp_path / "sd.gguf", "F32", config=cfg, tokenizer_dir=d, quiet=True)
    ggquant.convert(d, tmp_path / "dir.gguf", "F32", quiet=True)
    assert tensors(tmp_path / "sd.gguf") == tensors(tmp_path / "dir.gguf")
    model = _build("granitemoe", tmp_path / "plain")
    cfg = json.loads((tmp_path / "plain" / "config.json").read_text())
    _, tmap = gguf_tensor_map(cfg, {n: tuple(p.shape) for n, p in model.named_parameters()})
    assert [(p.hf_name, p.index) for p in tmap["blk.1.ffn_up_exps.weight"].parts] == [
        ("model.layers.1.block_sparse_moe.experts.gate_up_proj", (slice(None), slice(32, None)))]


def test_quality_inverse_map_names_the_splits_it_cannot_undo(tmp_path):
    """DeepSeek's kv_b_proj split and Granite's shared gate+up have no inverse in ggquant.quality: named, never
    mapped wrong."""
    from ggquant.quality.names import gguf_tensor_map

    for arch, what in (("deepseek-v3", r"blk\.0\.attn_k_b\.weight: made of model\.layers\.0\.self_attn\.kv_b_proj"),
                       ("granitemoe-shared", r"blk\.0\.ffn_gate_shexp\.weight: made of model\.layers\.0\.shared_mlp")):
        model = _build(arch, tmp_path / arch)
        cfg = json.loads((tmp_path / arch / "config.json").read_text())
        with pytest.raises(ggquant.GGQuantError, match=what):
            gguf_tensor_map(cfg, {n: tuple(p.shape) for n, p in model.named_parameters()})
