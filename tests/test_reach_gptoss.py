"""gpt-oss (``GptOssForCausalLM``) against llama.cpp's two steps: a tiny random model whose experts are stored as
the released checkpoints store them (MXFP4 ``*_blocks``/``*_scales`` in uint8, plus biases), and the same model
with float experts (the bf16 checkpoint form). ggquant's GGUF equals convert_hf_to_gguf.py's key by key and
tensor by tensor (the MXFP4 experts kept as they are), runs in llama.cpp like transformers, and its quantized
presets equal llama_model_quantize's files byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import ggquant
import hf_models
from reach_oracles import convert_hf_to_gguf, kvs, llama_quantize, logits, require_two_steps, sha, tensors

require_two_steps()
import gguf  # noqa: E402
import torch  # noqa: E402
import transformers as tr  # noqa: E402
mxfp4 = pytest.importorskip("transformers.integrations.mxfp4")

V, H, F, E = 384, 64, 64, 4


def _random_mxfp4(rng: np.random.Generator, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Random E2M1 codes and E8M0 scales as the released checkpoints lay them out: blocks (E, rows, cols/32, 16),
    two codes a byte (element 2k in the low nibble), scales (E, rows, cols/32)."""
    blocks = rng.integers(0, 256, (E, rows, cols // 32, 16), dtype=np.uint8)
    scales = rng.integers(127 - 7, 127 - 3, (E, rows, cols // 32), dtype=np.uint8)
    return blocks, scales


def _build(d: Path, experts: str) -> None:
    """Save a tiny gpt-oss (hidden 64, 2 layers, 4 experts, sliding window on layer 0, YaRN, bf16) with random
    MXFP4 experts, packed (``experts="mxfp4"``) or as the float values transformers decodes them to."""
    torch.manual_seed(0)
    d.mkdir(parents=True, exist_ok=True)
    rope = {"rope_type": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
            "original_max_position_embeddings": 64, "rope_theta": 150000.0}
    cfg = tr.GptOssConfig(vocab_size=V, hidden_size=H, intermediate_size=F, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=16, num_local_experts=E, num_experts_per_tok=2,
                          sliding_window=8, max_position_embeddings=256, rope_parameters=rope, eos_token_id=V - 3,
                          pad_token_id=V - 3)
    model = tr.GptOssForCausalLM(cfg)
    rng = np.random.default_rng(0)
    packed: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.normal_(1.0, 0.1)
            elif n.endswith("sinks") or n.endswith("bias"):
                p.normal_(0.0, 0.5 if n.endswith("sinks") else 0.02)
        for i, layer in enumerate(model.model.layers):
            ex = layer.mlp.experts
            for proj, rows, cols in (("gate_up_proj", 2 * F, H), ("down_proj", H, F)):
                blocks, scales = _random_mxfp4(rng, rows, cols)
                w = mxfp4.convert_moe_packed_tensors(torch.from_numpy(blocks), torch.from_numpy(scales),
                                                     dtype=torch.float32)
                getattr(ex, proj).copy_(w)  # (E, cols, rows): transformers' own dequantization of the packed form
                packed[f"model.layers.{i}.mlp.experts.{proj}_blocks"] = blocks
                packed[f"model.layers.{i}.mlp.experts.{proj}_scales"] = scales
    hf_models.bpe_tokenizer(d, V, hf_models.O200K_REGEX, bos=False)
    model.eval().to(torch.bfloat16).save_pretrained(d)  # bf16 as released (the MXFP4 values are exact in bf16)
    if experts == "mxfp4":  # as released: experts packed, quantization_config, rope_scaling + rope_theta
        from safetensors.torch import load_file, save_file

        st = {k: v for k, v in load_file(d / "model.safetensors").items()
              if not k.endswith(("experts.gate_up_proj", "experts.down_proj"))}
        save_file({**st, **{k: torch.from_numpy(v) for k, v in packed.items()}}, d / "model.safetensors",
                  metadata={"format": "pt"})
        c = json.loads((d / "config.json").read_text())
        rp = c.pop("rope_parameters")
        c["rope_theta"] = rp.pop("rope_theta")
        c["rope_scaling"] = rp
        c["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
            "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
        (d / "config.json").write_text(json.dumps(c, indent=2))


@pytest.fixture(scope="module", params=["mxfp4", "float"])
def gptoss(request, tmp_path_factory):
    """(model directory, the model as transformers loads it, convert_hf_to_gguf.py's F32 file) for each form of
    the experts; transformers dequantizes MXFP4 experts on the CPU (``Mxfp4Config(dequantize=True)``)."""
    d = tmp_path_factory.mktemp(f"gptoss-{request.param}") / "gpt-oss-tiny"
    _build(d, request.param)
    kw = {"quantization_config": tr.Mxfp4Config(dequantize=True)} if request.param == "mxfp4" else {}
    model = tr.GptOssForCausalLM.from_pretrained(d, **kw).float().eval()
    ref = d.parent / "ref-f32.gguf"
    convert_hf_to_gguf(d, ref, "f32", pre="gpt-4o")
    return d, model, ref


def test_f32_matches_convert_hf_to_gguf_and_transformers(gptoss, tmp_path):
    d, model, ref = gptoss
    ours = tmp_path / "ours.gguf"
    ggquant.convert(d, ours, "F32", quiet=True)
    assert kvs(ours) == kvs(ref)
    assert tensors(ours) == tensors(ref)
    assert sha(ours) == sha(ref)
    ids = hf_models.reference_ids(d, hf_models.TEST_TEXT)
    with torch.no_grad():
        want = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
    got = logits(ours, ids)
    # llama.cpp multiplies MXFP4 weights with activations rounded to Q8_0 (ggml's vec_dot_type for MXFP4): ~2 %
    assert np.abs(got - want).max() / np.abs(want).max() < (5e-2 if _stored(ref) else 2e-3)
    r = gguf.GGUFReader(str(ours))
    for i, layer in enumerate(model.model.layers):  # the experts hold exactly transformers' values
        ex = layer.mlp.experts
        gate_up = ex.gate_up_proj.detach().transpose(1, 2).numpy()
        for name, w in (("gate", gate_up[:, ::2]), ("up", gate_up[:, 1::2]),
                        ("down", ex.down_proj.detach().transpose(1, 2).numpy())):
            t = next(t for t in r.tensors if t.name == f"blk.{i}.ffn_{name}_exps.weight")
            data = ggquant.dequantize(np.asarray(t.data), int(t.tensor_type)) if _stored(ref) else np.asarray(t.data)
            np.testing.assert_array_equal(data.reshape(w.shape), w)


@pytest.mark.parametrize("outtype", ["f16", "bf16"])
def test_f16_and_bf16_files_identical(gptoss, tmp_path, outtype):
    d, _, _ = gptoss
    ours, ref = tmp_path / "ours.gguf", tmp_path / "ref.gguf"
    convert_hf_to_gguf(d, ref, outtype, pre="gpt-4o")
    ggquant.convert(d, ours, outtype.upper(), quiet=True)
    assert sha(ours) == sha(ref)
    if _stored(ref):
        assert gguf.GGUFReader(str(ours)).fields["general.file_type"].contents() == 38  # MOSTLY_MXFP4_MOE


def _stored(path: Path) -> bool:
    """Whether the file keeps MXFP4 experts (the MXFP4 checkpoint's conversions)."""
    return any(t.tensor_type == gguf.GGMLQuantizationType.MXFP4 for t in gguf.GGUFReader(str(path)).tensors)


@pytest.mark.parametrize("preset", ["MXFP4_MOE", "Q8_0", "Q4_K_M"])
def test_quantized_presets_match_llama_quantize(gptoss, tmp_path, preset):
    """MXFP4_MOE copies the MXFP4 experts and makes the rest Q8_0; the others requantize MXFP4 experts, which
    llama-quantize does only with --allow-requantize (and so does ggquant), by convert and by quantize_file."""
    d, _, ref = gptoss
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    stored = _stored(ref)
    requant = stored and preset != "MXFP4_MOE"
    if requant:
        with pytest.raises(ggquant.GGQuantError, match=r"stored as MXFP4 in the checkpoint.*allow_requantize=True"):
            ggquant.convert(d, ours, preset, quiet=True)
        assert not ours.exists()
    ggquant.convert(d, ours, preset, quiet=True, allow_requantize=requant)
    llama_quantize(ref, theirs, preset, allow_requantize=requant)
    assert sha(ours) == sha(theirs)
    requantized = tmp_path / "requantized.gguf"  # the second step alone, from convert_hf_to_gguf.py's file
    ggquant.quantize_file(ref, requantized, preset, allow_requantize=requant, quiet=True)
    assert sha(requantized) == sha(theirs)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(ours)).tensors}
    assert (types["blk.0.ffn_down_exps.weight"] == "MXFP4") == (preset == "MXFP4_MOE")
    assert types["blk.0.attn_sinks.weight"] == "F32" and types["blk.0.ffn_gate_inp.weight"] == "F32"


def test_bad_mxfp4_experts_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    d = tmp_path / "m"
    _build(d, "mxfp4")
    st = load_file(d / "model.safetensors")
    blocks = "model.layers.1.mlp.experts.down_proj_blocks"
    for bad, match in (({k: v for k, v in st.items() if k != blocks}, r"down_proj_scales has no .*down_proj_blocks"),
                       ({**st, blocks: st[blocks][..., :8].contiguous()},
                        r"should be uint8 \(experts, rows, cols / 32, 16\)"),
                       ({**st, blocks: st[blocks].to(torch.int8)}, r"should be uint8")):
        save_file(bad, d / "model.safetensors", metadata={"format": "pt"})
        with pytest.raises(ggquant.GGQuantError, match=r"model\.safetensors: .*" + match):
            ggquant.convert(d, tmp_path / "x.gguf", "F32", quiet=True)
        assert not (tmp_path / "x.gguf").exists()


def test_planner_reads_the_experts_as_values(gptoss):
    """The precision planner's sampler decodes the MXFP4 blocks (to transformers' values)."""
    from ggquant import precision

    d, model, _ = gptoss
    m = precision.open_model(d)
    try:
        i = [t.name for t in m.source.tensors].index("blk.1.ffn_up_exps.weight")
        want = model.model.layers[1].mlp.experts.gate_up_proj.detach().transpose(1, 2).numpy()[:, 1::2]
        np.testing.assert_array_equal(np.stack(m.rows(i)), want)
    finally:
        m.close()
