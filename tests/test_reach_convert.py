"""ggquant.convert against llama.cpp's two steps, whole files: convert_hf_to_gguf.py (--outtype f32) and then
llama_model_quantize give the same bytes (sha256) as ggquant's one step, and the architectures added for
issue 12 (Qwen3, Qwen3-MoE) convert as convert_hf_to_gguf.py does and run in llama.cpp like transformers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import ggquant
import hf_models
from reach_oracles import assert_like_llama_cpp, convert_hf_to_gguf, llama_quantize, require_two_steps, sha

require_two_steps()
import gguf  # noqa: E402
import torch  # noqa: E402
import transformers as tr  # noqa: E402

V = 384


def _build(arch: str, d: Path, hidden: int = 64):
    """A tiny random model of a new architecture with a trained vocabulary (BPE with Qwen's pre-tokenizer,
    or SentencePiece for Gemma)."""
    torch.manual_seed(0)
    d.mkdir(parents=True, exist_ok=True)
    common = dict(vocab_size=V, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                  head_dim=32, eos_token_id=V - 3)
    if arch == "qwen3":
        model = tr.Qwen3ForCausalLM(tr.Qwen3Config(**common, tie_word_embeddings=True))
    elif arch == "qwen3moe":
        model = tr.Qwen3MoeForCausalLM(tr.Qwen3MoeConfig(**common, num_experts=4, num_experts_per_tok=2,
                                                          moe_intermediate_size=hidden, norm_topk_prob=True))
    elif arch == "llama3-rope":  # Llama 3.x: rope_freqs.weight generated from the scaling parameters
        rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64, "rope_theta": 500000.0}
        c = {k: v for k, v in common.items() if k != "head_dim"}
        model = tr.LlamaForCausalLM(tr.LlamaConfig(**c, rope_parameters=rope, bos_token_id=V - 4))
    elif arch == "phi3-longrope":  # Phi-3.5 / Phi-4-mini: long and short factors
        hd = 16
        rope = {"rope_type": "longrope", "rope_theta": 10000.0, "long_factor": [1.0 + i / 8 for i in range(hd // 2)],
                "short_factor": [1.0 + i / 16 for i in range(hd // 2)], "original_max_position_embeddings": 64}
        c = {k: v for k, v in common.items() if k not in ("head_dim", "eos_token_id")}
        model = tr.Phi3ForCausalLM(tr.Phi3Config(**c, rope_parameters=rope, original_max_position_embeddings=64,
                                                 bos_token_id=2, eos_token_id=1, pad_token_id=0))
    elif arch == "granite":  # Granite 3 dense: the four multipliers
        c = {k: v for k, v in common.items() if k != "head_dim"}
        model = tr.GraniteForCausalLM(tr.GraniteConfig(**c, attention_multiplier=0.2, embedding_multiplier=6.0,
                                                       residual_multiplier=0.5, logits_scaling=4.0,
                                                       bos_token_id=V - 4, tie_word_embeddings=True))
    elif arch == "smollm3":  # every 4th layer without RoPE
        c = {k: v for k, v in common.items() if k != "head_dim"}
        model = tr.SmolLM3ForCausalLM(tr.SmolLM3Config(**dict(c, num_hidden_layers=4), bos_token_id=V - 4,
                                                       pad_token_id=None, tie_word_embeddings=True))
    elif arch == "olmo2":
        c = {k: v for k, v in common.items() if k != "head_dim"}
        model = tr.Olmo2ForCausalLM(tr.Olmo2Config(**c, pad_token_id=None, bos_token_id=None))
    elif arch == "mistral-head-dim":  # Mistral-Nemo/Small: head_dim 32 != hidden / heads = 16
        model = tr.MistralForCausalLM(tr.MistralConfig(**dict(common, eos_token_id=1), bos_token_id=2, sliding_window=None))
    elif arch in ("gemma2", "gemma3", "gemma3-vlm", "gemma3-bpe"):
        g = dict(common, bos_token_id=2, eos_token_id=1, pad_token_id=0, sliding_window=64, query_pre_attn_scalar=32)
        if arch == "gemma2":
            model = tr.Gemma2ForCausalLM(tr.Gemma2Config(**g, attn_logit_softcapping=50.0, final_logit_softcapping=30.0))
        elif arch in ("gemma3", "gemma3-bpe"):
            model = tr.Gemma3ForCausalLM(tr.Gemma3TextConfig(**g))
        else:
            vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          image_size=28, patch_size=14)
            model = tr.Gemma3ForConditionalGeneration(tr.Gemma3Config(text_config=g, vision_config=vision,
                                                                      mm_tokens_per_image=4, image_token_index=V - 1))
    else:
        raise ValueError(arch)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.normal_(0.0 if arch.startswith("gemma") else 1.0, 0.1)
    if arch.startswith(("gemma", "mistral", "phi3")) and arch != "gemma3-bpe":  # Gemma 3 may ship tokenizer.json only
        hf_models.spm_tokenizer(d, V, dummy_prefix=not arch.startswith("gemma"))
    elif arch in ("smollm3", "llama3-rope", "granite"):
        hf_models.bpe_tokenizer(d, V, hf_models.LLAMA3_REGEX, bos=True)
    else:
        hf_models.bpe_tokenizer(d, V, hf_models.QWEN2_REGEX, bos=False)
    model.eval().save_pretrained(d)
    return model


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """A Llama whose config.json lacks head_dim, as older uploads (SmolLM2) ship it."""
    d = tmp_path_factory.mktemp("two-step") / "llama"
    hf_models.build("llama", d, hidden=256, layers=2, vocab=V)
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("head_dim", None)
    (d / "config.json").write_text(json.dumps(cfg))
    ref = d.parent / "ref-f32.gguf"
    convert_hf_to_gguf(d, ref, "f32", pre="llama-bpe")
    return d, ref


def test_f32_file_identical_with_autoconfig_head_dim(llama_dir, tmp_path):
    d, ref = llama_dir
    ours = tmp_path / "f32.gguf"
    ggquant.convert(d, ours, "F32", quiet=True)
    assert gguf.GGUFReader(str(ours)).fields["llama.attention.key_length"].contents() == 64
    assert sha(ours) == sha(ref)


@pytest.mark.parametrize("preset", ["Q4_K_M", "Q8_0", "Q5_K_S", "IQ4_XS"])
def test_two_step_route_whole_file(llama_dir, tmp_path, preset):
    d, ref = llama_dir
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    ggquant.convert(d, ours, preset, quiet=True)
    llama_quantize(ref, theirs, preset)
    assert sha(ours) == sha(theirs)


def test_two_step_route_with_imatrix_file(llama_dir, tmp_path, rng):
    d, ref = llama_dir
    r = gguf.GGUFReader(str(ref))
    names = [(t.name, int(t.shape[0])) for t in r.tensors if len(t.shape) == 2 and t.name != "token_embd.weight"]
    path = tmp_path / "imatrix.dat"
    with open(path, "wb") as f:  # legacy format with the chunk count and dataset trailer
        f.write(struct.pack("<i", len(names)))
        for name, ne0 in names:
            f.write(struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 4, ne0))
            f.write((rng.uniform(0.1, 3.0, ne0) * 4).astype("<f4").tobytes())
        f.write(struct.pack("<ii", 17, 8) + b"wiki.txt")
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    ggquant.convert(d, ours, "Q4_K_M", imatrix=str(path), quiet=True)
    w = ggquant.load_imatrix(path)
    kv = [("quantize.imatrix.file", str(path).encode()), ("quantize.imatrix.dataset", b"wiki.txt"),
          ("quantize.imatrix.entries_count", len(w)), ("quantize.imatrix.chunks_count", 17)]
    llama_quantize(ref, theirs, "Q4_K_M", imatrix=w, kv=kv)
    assert sha(ours) == sha(theirs)


@pytest.mark.parametrize("arch", ["qwen3", "qwen3moe", "gemma3", "gemma3-vlm", "gemma3-bpe", "gemma2",
                                  "mistral-head-dim", "smollm3", "olmo2", "llama3-rope", "phi3-longrope",
                                  "granite"])
def test_new_arch_matches_convert_hf_to_gguf_and_transformers(arch, tmp_path):
    d = tmp_path / arch
    model = _build(arch, d)
    assert_like_llama_cpp(d, model, tmp_path, pre={"smollm3": "llama-bpe", "llama3-rope": "llama-bpe", "granite": "llama-bpe", "gemma3-bpe": "qwen2"}.get(
        arch, "" if arch.startswith(("gemma", "mistral", "phi3")) else "qwen2"))


def test_unsupported_architecture_says_how_to_ask(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["NoSuchForCausalLM"]}))
    ggquant.save_file({"w": np.ones((2, 2), np.float32)}, tmp_path / "model.safetensors")
    with pytest.raises(ggquant.GGQuantError, match=r"not supported; supported: .*Qwen3ForCausalLM.*open an issue"):
        ggquant.convert(tmp_path, tmp_path / "x.gguf", "Q8_0")


def test_no_tokenizer_is_an_error_unless_no_vocab(tmp_path):
    src = tmp_path / "src"
    hf_models.build("llama", src, hidden=64, layers=1, vocab=V)
    d = tmp_path / "weights-only"
    d.mkdir()
    for f in ("config.json", "model.safetensors"):
        (d / f).write_bytes((src / f).read_bytes())
    with pytest.raises(ggquant.GGQuantError, match=r"no tokenizer\.json or tokenizer\.model; llama\.cpp cannot run "
                                                   r"a GGUF without a vocabulary; pass --tokenizer-dir DIR"):
        ggquant.convert(d, tmp_path / "a.gguf", "Q8_0", quiet=True)
    assert not (tmp_path / "a.gguf").exists()
    with pytest.warns(ggquant.GGQuantWarning, match="no vocabulary"):
        ggquant.convert(d, tmp_path / "novocab.gguf", "Q8_0", quiet=True, no_vocab=True)
    assert "tokenizer.ggml.tokens" not in gguf.GGUFReader(str(tmp_path / "novocab.gguf")).fields
    # --tokenizer-dir: the same file as converting the complete directory
    from ggquant import cli

    assert cli.main(["convert", str(d), "-o", str(tmp_path / "cli.gguf"), "-q", "Q8_0", "--quiet",
                     "--tokenizer-dir", str(src)]) == 0
    ggquant.convert(src, tmp_path / "full.gguf", "Q8_0", quiet=True, name="Weights Only")
    a, b = gguf.GGUFReader(str(tmp_path / "cli.gguf")), gguf.GGUFReader(str(tmp_path / "full.gguf"))
    assert a.fields["tokenizer.ggml.tokens"].contents() == b.fields["tokenizer.ggml.tokens"].contents()
    assert cli.main(["convert", str(d), "-o", str(tmp_path / "e.gguf"), "--quiet"]) == 1
    assert cli.main(["convert", str(d), "-o", str(tmp_path / "e.gguf"), "--quiet", "--no-vocab"]) == 0


def test_gemma2_without_tokenizer_model_is_an_error(tmp_path):
    d = tmp_path / "gemma2"
    _build("gemma2", d)
    (d / "tokenizer.model").unlink()
    hf_models.bpe_tokenizer(d, V, hf_models.QWEN2_REGEX, bos=False)
    with pytest.raises(ggquant.GGQuantError, match=r"Gemma 2 needs tokenizer\.model"):
        ggquant.convert(d, tmp_path / "a.gguf", "Q8_0", quiet=True)
    assert not (tmp_path / "a.gguf").exists()


def test_requantize_warnings_reach_python_warnings(tmp_path):
    src = tmp_path / "src"
    hf_models.build("llama", src, hidden=64, layers=1, vocab=V)
    f32 = tmp_path / "f32.gguf"
    ggquant.convert(src, f32, "F32", quiet=True)
    with pytest.warns(ggquant.GGQuantWarning, match="did not find imatrix weights for"):
        ggquant.quantize_file(f32, tmp_path / "q.gguf", "Q8_0", imatrix={"nothing.weight": np.ones(64, np.float32)})


def test_model_card_without_pyyaml_warns(tmp_path, monkeypatch):
    import builtins

    d = tmp_path / "m"
    hf_models.build("llama", d, hidden=64, layers=1, vocab=V)
    (d / "README.md").write_text("---\nlicense: mit\n---\n# card\n")
    assert ggquant.convert(d, None, "Q8_0", dry_run=True).metadata["general.license"] == "mit"
    real_import = builtins.__import__

    def no_yaml(name, *a, **k):
        if name == "yaml":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    with pytest.warns(ggquant.GGQuantWarning, match="pip install pyyaml"):
        r = ggquant.convert(d, None, "Q8_0", dry_run=True)
    assert "general.license" not in r.metadata


def test_mlx_q_bits_and_q_group_size_as_mlx_lm_names_them(tmp_path):
    from ggquant import cli

    d = tmp_path / "m"
    hf_models.build("llama", d, hidden=128, layers=1, vocab=V)
    assert cli.main(["convert", str(d), "--format", "mlx", "-o", str(tmp_path / "cli"), "--q-bits", "8",
                     "--q-group-size", "64", "--quiet"]) == 0
    ggquant.convert_mlx(d, tmp_path / "api", "affine", bits=8, group_size=64, quiet=True)
    cfg = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert cfg["quantization"]["bits"] == 8 and cfg["quantization"]["group_size"] == 64
    for f in sorted(p.name for p in (tmp_path / "api").iterdir()):
        assert (tmp_path / "cli" / f).read_bytes() == (tmp_path / "api" / f).read_bytes(), f
    assert cli.main(["convert", str(d), "-o", str(tmp_path / "x.gguf"), "--q-bits", "8", "--quiet"]) == 2
