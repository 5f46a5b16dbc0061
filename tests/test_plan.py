"""ggquant.plan chooses the same per-tensor types as llama.cpp's quantizer.

The oracle is libllama itself (``llama_quant_compute_types`` on a mock model, via tests/llama_oracle.py);
those tests skip when llama-cpp-python is not installed. The rest needs no engine.
"""

from __future__ import annotations

import llama_oracle
import pytest
from ggquant import GGMLType, UnsupportedTypeError
from ggquant.plan import LLAMA_FTYPE, PRESETS, ModelInfo, allows_quantization, plan_quantization, resolve_preset

needs_llama = pytest.mark.skipif(llama_oracle.available() is not None, reason=str(llama_oracle.available()))

ALL_FTYPES = [k for k in LLAMA_FTYPE if k not in ("Q1_0", "Q2_0")]


def dense(n_layer, e=256, f=512, q_rows=None, kv_rows=128, vocab=1000, tied=False, extra=()):
    q_rows = q_rows or e
    ts = [("token_embd.weight", (vocab, e)), ("output_norm.weight", (e,))]
    if not tied:
        ts.append(("output.weight", (vocab, e)))
    for i in range(n_layer):
        ts += [(f"blk.{i}.attn_norm.weight", (e,)), (f"blk.{i}.ffn_norm.weight", (e,)),
               (f"blk.{i}.attn_q.weight", (q_rows, e)), (f"blk.{i}.attn_k.weight", (kv_rows, e)),
               (f"blk.{i}.attn_v.weight", (kv_rows, e)), (f"blk.{i}.attn_output.weight", (e, q_rows)),
               (f"blk.{i}.ffn_gate.weight", (f, e)), (f"blk.{i}.ffn_up.weight", (f, e)),
               (f"blk.{i}.ffn_down.weight", (e, f)), (f"blk.{i}.attn_q.bias", (q_rows,))]
        ts += [(n.format(i=i), s) for n, s in extra]
    return ts


def moe(n_layer, n_exp, e=256, f=256, shared=False):
    ts = [("token_embd.weight", (500, e)), ("output.weight", (500, e)), ("output_norm.weight", (e,))]
    for i in range(n_layer):
        ts += [(f"blk.{i}.attn_norm.weight", (e,)), (f"blk.{i}.attn_q.weight", (e, e)),
               (f"blk.{i}.attn_k.weight", (64, e)), (f"blk.{i}.attn_v.weight", (64, e)),
               (f"blk.{i}.attn_output.weight", (e, e)), (f"blk.{i}.ffn_gate_inp.weight", (n_exp, e)),
               (f"blk.{i}.ffn_gate_exps.weight", (n_exp, f, e)), (f"blk.{i}.ffn_up_exps.weight", (n_exp, f, e)),
               (f"blk.{i}.ffn_down_exps.weight", (n_exp, e, f))]
        if shared:
            ts += [(f"blk.{i}.ffn_gate_shexp.weight", (f, e)), (f"blk.{i}.ffn_up_shexp.weight", (f, e)),
                   (f"blk.{i}.ffn_down_shexp.weight", (e, f)), (f"blk.{i}.ffn_gate_inp_shexp.weight", (1, e))]
    return ts


MODELS = {
    # name: (tensors, ModelInfo)
    "llama-gqa4-8L": (dense(8, kv_rows=64), ModelInfo("llama", 8, 16, 4)),
    "llama-mha-tied-12L": (dense(12, kv_rows=256, tied=True), ModelInfo("llama", 12, 8, 8)),
    "qwen2-gqa2-odd-rows": (dense(4, e=320, f=448, kv_rows=160), ModelInfo("qwen2", 4, 4, 2)),
    "tiny-64-fallbacks": (dense(2, e=64, f=128, kv_rows=32, vocab=300), ModelInfo("llama", 2, 4, 2)),
    "rows-not-32": (dense(3, e=100, f=200, kv_rows=50, vocab=300), ModelInfo("llama", 3, 4, 2)),
    "llama-70b-shape": (dense(80, e=256, f=256, kv_rows=32, vocab=300), ModelInfo("llama", 80, 64, 8)),
    "falcon-16L": (dense(16, kv_rows=64), ModelInfo("falcon", 16, 8, 2)),
    "phi3-qkv": ([("token_embd.weight", (300, 256)), ("output.weight", (300, 256))]
                 + [t for i in range(4) for t in ((f"blk.{i}.attn_qkv.weight", (768, 256)),
                                                  (f"blk.{i}.attn_output.weight", (256, 256)),
                                                  (f"blk.{i}.ffn_up.weight", (1024, 256)),
                                                  (f"blk.{i}.ffn_down.weight", (256, 512)))],
                 ModelInfo("phi3", 4, 4, 4)),
    "mixtral-8x": (moe(4, 8), ModelInfo("llama", 4, 8, 2, n_expert=8)),
    "qwen2moe-4x-shared": (moe(3, 4, shared=True), ModelInfo("qwen2moe", 3, 4, 4, n_expert=4)),
}


def _oracle(tensors, ftype, mi, **kw):
    return llama_oracle.compute_types(tensors, ftype, arch=mi.arch, n_layer=mi.n_layer, n_head=mi.n_head,
                                      n_head_kv=mi.n_head_kv, n_expert=mi.n_expert, **kw)


@needs_llama
@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_preset_matches_llama_cpp(model):
    tensors, mi = MODELS[model]
    for ftype_name in ALL_FTYPES:
        want = _oracle(tensors, LLAMA_FTYPE[ftype_name], mi)
        try:
            plan = plan_quantization(tensors, ftype_name, mi)
        except UnsupportedTypeError:  # llama.cpp throws too when no fallback exists
            continue
        got = {t.name: int(t.type) for t in plan.tensors}
        bad = {n: (GGMLType(got[n]).name, GGMLType(want[n]).name) for n in want if got[n] != want[n]}
        assert not bad, f"{model} {ftype_name}: ggquant vs llama.cpp differ: {bad}"
        assert plan.file_type == LLAMA_FTYPE[ftype_name]


@needs_llama
def test_overrides_and_pure_match_llama_cpp():
    tensors, mi = MODELS["llama-gqa4-8L"]
    overrides = [("attn_v", GGMLType.Q8_0), (r"blk\.[0-3]\.ffn_down", GGMLType.Q6_K), ("ffn_gate", GGMLType.IQ4_NL)]
    for ftype_name in ("Q4_K_M", "Q3_K_S", "Q5_0", "F16"):
        want = _oracle(tensors, LLAMA_FTYPE[ftype_name], mi, tensor_types=overrides)
        plan = plan_quantization(tensors, ftype_name, mi, tensor_types=[f"{p}={t.name}" for p, t in overrides])
        assert {t.name: int(t.type) for t in plan.tensors} == want, ftype_name
        want = _oracle(tensors, LLAMA_FTYPE[ftype_name], mi, pure=True)
        plan = plan_quantization(tensors, ftype_name, mi, pure=True)
        assert {t.name: int(t.type) for t in plan.tensors} == want, ftype_name


def test_file_types_are_gguf_py_llama_file_types():
    gguf = pytest.importorskip("gguf")
    known = {m.name: m.value for m in gguf.LlamaFileType}
    checked = 0
    for name, value in LLAMA_FTYPE.items():
        key = "ALL_F32" if name == "F32" else f"MOSTLY_{name}"
        if key in known:  # gguf 0.19 predates Q1_0/Q2_0
            assert known[key] == value, name
            checked += 1
    assert checked >= len(PRESETS)


def test_sizes_agree_with_gguf_py():
    gguf = pytest.importorskip("gguf")
    tensors, mi = MODELS["qwen2-gqa2-odd-rows"]
    plan = plan_quantization(tensors, "Q4_K_M", mi)
    for t in plan.tensors:
        bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(int(t.type))]
        assert t.nbytes == t.n_elements // bs * ts


def test_structure_without_engine():
    tensors, mi = MODELS["tiny-64-fallbacks"]
    plan = plan_quantization(tensors, "Q4_K_M", mi)
    types = plan.types
    # 1-D tensors, norms and biases are never quantized
    assert all(types[n] == GGMLType.F32 for n, s in tensors if len(s) == 1)
    # rows of 64 cannot hold a 256 block: q4_K falls back to q5_0, q6_K to q8_0 (llama.cpp's table)
    assert types["blk.0.attn_q.weight"] == GGMLType.Q5_0
    assert plan.n_fallback > 0 and plan.warnings
    assert not allows_quantization("blk.0.ffn_gate_inp.weight", (8, 64))
    assert not allows_quantization("blk.0.ffn_gate_inp_shexp.weight", (1, 64))  # ne = {64, 1}: 1-D for ggml
    assert plan.tensor_data_size() >= sum(t.nbytes for t in plan.tensors)


def test_plain_type_and_preset_names():
    assert resolve_preset("q4_k_m")[0] == "Q4_K_M"
    assert resolve_preset("q4_K") == ("q4_K", GGMLType.Q4_K, True)
    assert resolve_preset(GGMLType.Q8_0)[2] is True
    tensors, mi = MODELS["llama-gqa4-8L"]
    plan = plan_quantization(tensors, "q5_K", mi)
    assert {t.type for t in plan.tensors if len(t.shape) == 2} == {GGMLType.Q5_K}
    assert plan.file_type == LLAMA_FTYPE["Q5_K_M"]
    with pytest.raises(UnsupportedTypeError, match="Q4_K_M"):
        plan_quantization(tensors, "Q4_K_X", mi)
    assert set(PRESETS) <= set(LLAMA_FTYPE)
