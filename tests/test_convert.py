"""ggquant.convert: Hugging Face checkpoint -> GGUF, checked with real engines.

- llama.cpp (llama-cpp-python) loads every converted architecture; the F32 file's logits match the
  transformers model's, tokenization of a test string matches the model's own tokenizer, and Q8_0 /
  Q4_K_M files give finite logits close to F32.
- For each preset, the tensor types and bytes ggquant writes equal what llama.cpp's own quantizer
  (``llama_model_quantize``) writes from ggquant's F32 output.
- Metadata and F32 tensors equal llama.cpp's convert_hf_to_gguf.py output (when its source is available:
  set ``LLAMA_CPP_DIR`` to a llama.cpp checkout, or let tests/oracle/build_oracle.sh unpack one).

Engine tests skip with the reason when transformers, torch or llama-cpp-python are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ggquant
import hf_models
import llama_oracle
import reach_oracles
import numpy as np
import pytest
from ggquant import GGMLType, GGQuantError
from ggquant.plan import LLAMA_FTYPE
from helpers.gguf_files import assert_same_tensors, copy_model_dir, gguf_tensors

gguf = pytest.importorskip("gguf")


def _missing(*mods: str) -> str | None:
    import importlib.util

    for m in mods:
        if importlib.util.find_spec(m) is None:
            return f"{m} is not installed"
    return None


HF_MISSING = _missing("torch", "transformers", "tokenizers", "sentencepiece")
needs_hf = pytest.mark.skipif(HF_MISSING is not None, reason=str(HF_MISSING))
LLAMA_MISSING = _missing("llama_cpp") or llama_oracle.available()
needs_llama = pytest.mark.skipif(LLAMA_MISSING is not None, reason=str(LLAMA_MISSING))

ARCHS = ["llama", "mistral", "qwen2", "gemma", "phi3", "mixtral", "qwen2moe"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Build each tiny model once per module: {arch: (dir, transformers model)}."""
    if HF_MISSING:
        pytest.skip(HF_MISSING)
    root = tmp_path_factory.mktemp("hf")
    cache: dict[str, tuple[Path, object]] = {}

    def get(arch: str, **kw):
        key = arch + json.dumps(kw, sort_keys=True)
        if key not in cache:
            d = root / key.replace("{", "_").replace("}", "").replace('"', "").replace(":", "").replace(",", "_").replace(" ", "")
            cache[key] = (d, hf_models.build(arch, d, **kw))
        return cache[key]

    return get


def _llama_logits(path, ids):
    import llama_cpp

    llama_oracle.silence()  # verbose=False would open /dev/null per model and leak it (ResourceWarning)
    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=128, n_threads=2, verbose=True)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)]), llm.tokenize(hf_models.TEST_TEXT.encode(), add_bos=True, special=False)
    finally:
        llm.close()


@needs_hf
@needs_llama
@pytest.mark.parametrize("arch", ARCHS)
def test_llama_cpp_loads_and_matches_transformers(arch, models, tmp_path):
    import torch

    d, model = models(arch)
    ids = hf_models.reference_ids(d, hf_models.TEST_TEXT)
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].float().numpy()
    scale = np.abs(ref).max()
    logits = {}
    for preset in ("F32", "Q8_0", "Q4_K_M"):  # rows of 64: Q4_K_M's k-types fall back to q5_0/q8_0 here
        out = tmp_path / f"{arch}-{preset}.gguf"
        ggquant.convert(d, out, preset, quiet=True)
        logits[preset], llama_ids = _llama_logits(out, ids)
        assert llama_ids == ids, f"{arch}: llama.cpp tokenizes the test string differently"
        assert np.isfinite(logits[preset]).all()
    err = np.abs(logits["F32"] - ref).max() / scale
    assert err < 2e-3, f"{arch} F32: max |llama.cpp - transformers| / max |logit| = {err:.2e}"
    for preset, lg in logits.items():
        rel = np.abs(lg - logits["F32"]).max() / scale
        assert rel < 0.25, f"{arch} {preset}: relative deviation from F32 {rel:.3f}"
        if preset != "F32":
            assert rel > 0  # really quantized


@needs_hf
@needs_llama
def test_llama3_rope_scaling_writes_rope_freqs(models, tmp_path):
    import torch

    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}
    d, model = models("llama", rope_scaling=rope)
    out = tmp_path / "f32.gguf"
    r = ggquant.convert(d, out, "F32", quiet=True)
    assert r.plan.tensor("rope_freqs.weight").shape == (8,)  # head_dim / 2
    ids = hf_models.reference_ids(d, hf_models.TEST_TEXT)
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].float().numpy()
    lg, _ = _llama_logits(out, ids)
    assert np.abs(lg - ref).max() / np.abs(ref).max() < 2e-3


@needs_hf
@needs_llama
@pytest.mark.parametrize("arch", ["llama", "qwen2moe"])
def test_k_quant_files_run_in_llama_cpp(arch, models, tmp_path):
    d, _ = models(arch, hidden=256, layers=2, vocab=384)  # rows of 256: real q4_K/q6_K blocks
    ids = hf_models.reference_ids(d, hf_models.TEST_TEXT)
    ggquant.convert(d, tmp_path / "f32.gguf", "F32", quiet=True)
    ref, _ = _llama_logits(tmp_path / "f32.gguf", ids)
    for preset in ("Q4_K_M", "Q6_K", "IQ4_XS"):
        try:
            r = ggquant.convert(d, tmp_path / f"{preset}.gguf", preset, quiet=True)
        except ggquant.UnsupportedTypeError as e:
            pytest.skip(f"{preset}: {e}")
        assert any(t.type.name.endswith("_K") or t.type.name.startswith("IQ") for t in r.plan.tensors)
        lg, _ = _llama_logits(r.path, ids)
        rel = np.abs(lg - ref).max() / np.abs(ref).max()
        assert np.isfinite(lg).all() and 0 < rel < 0.25, f"{preset}: {rel}"


PRESETS_ALL = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
               "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"]


def _plan_types_available(d, preset) -> str | None:
    plan = ggquant.convert(d, None, preset, dry_run=True).plan
    missing = sorted({t.type.name for t in plan.tensors if not ggquant.type_info(t.type).can_quantize})
    return f"this build cannot quantize {missing}" if missing else None


@needs_hf
@needs_llama
@pytest.mark.parametrize("arch", ["llama", "qwen2moe"])
def test_presets_equal_llama_model_quantize(arch, models, tmp_path):
    # hidden 256: K-quant rows fit; ffn 512; the MoE model's experts have rows of 256 too
    d, _ = models(arch, hidden=256, layers=2, vocab=384)
    f32 = tmp_path / "f32.gguf"
    ggquant.convert(d, f32, "F32", quiet=True)
    checked = []
    for preset in PRESETS_ALL:
        pure = False
        if _plan_types_available(d, preset):
            if preset not in ("Q4_0", "Q4_1", "Q5_0", "Q5_1"):
                continue  # needs kernels this build does not have yet
            pure = True  # the legacy presets give output.weight q6_K; --pure keeps every tensor legacy
        ours = tmp_path / f"ours-{preset}.gguf"
        theirs = tmp_path / f"llama-{preset}.gguf"
        ggquant.convert(d, ours, preset, quiet=True, pure=pure)
        llama_oracle.quantize_file(str(f32), str(theirs), LLAMA_FTYPE[preset], pure=pure)
        assert_same_tensors(ours, theirs, preset)
        ra, rb = gguf.GGUFReader(str(ours)), gguf.GGUFReader(str(theirs))
        assert int(ra.fields["general.file_type"].contents()) == int(rb.fields["general.file_type"].contents())
        checked.append(preset)
    print(f"{arch}: byte-identical to llama_model_quantize for {checked}")
    assert checked == PRESETS_ALL, f"presets not checked (kernels missing from this build): {set(PRESETS_ALL) - set(checked)}"


@needs_hf
@needs_llama
def test_imatrix_is_passed_to_the_kernels(models, tmp_path):
    for t in ("q4_0", "q4_1"):
        try:
            ggquant.quantize(np.ones((1, 256), np.float32), t, imatrix=np.ones(256, np.float32))
        except ggquant.UnsupportedTypeError as e:
            pytest.skip(f"this build has no imatrix kernel for {t}: {e}")
    d, _ = models("llama", hidden=256, layers=8, vocab=384)
    f32 = tmp_path / "f32.gguf"
    r = ggquant.convert(d, f32, "F32", quiet=True)
    rng = np.random.default_rng(7)
    imx = {t.name: rng.uniform(0.1, 4.0, t.shape[-1]).astype(np.float32)
           for t in r.plan.tensors if len(t.shape) == 2 and t.name != "token_embd.weight"}
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    keep_q8 = [(r"^output\.weight$", GGMLType.Q8_0)]  # the preset's q6_K output may not be built yet
    res = ggquant.convert(d, ours, "Q4_0", imatrix=imx, tensor_types=keep_q8, quiet=True)
    # with an imatrix llama.cpp gives the first 1/8 of the ffn_down layers q4_1
    assert res.plan.tensor("blk.0.ffn_down.weight").type == GGMLType.Q4_1
    llama_oracle.quantize_file(str(f32), str(theirs), LLAMA_FTYPE["Q4_0"], imatrix=imx, tensor_types=keep_q8)
    a = assert_same_tensors(ours, theirs, "with imatrix")
    no_imx = tmp_path / "noimx.gguf"
    ggquant.convert(d, no_imx, "Q4_0", tensor_types=keep_q8, quiet=True)
    assert not np.array_equal(gguf_tensors(no_imx)["blk.1.attn_q.weight"][1], a["blk.1.attn_q.weight"][1])


@needs_hf
def test_dry_run_predicts_the_file(models, tmp_path):
    d, _ = models("qwen2moe")
    out = tmp_path / "m.gguf"
    dry = ggquant.convert(d, out, "Q8_0", dry_run=True)
    assert not out.exists()
    real = ggquant.convert(d, out, "Q8_0", quiet=True)
    assert dry.file_size == out.stat().st_size == real.file_size
    r = gguf.GGUFReader(str(out))
    assert [(t.name, int(t.tensor_type)) for t in r.tensors] == [(t.name, int(t.type)) for t in dry.plan.tensors]
    text = dry.format()
    assert "blk.0.ffn_gate_exps.weight" in text and f"{dry.file_size:,}" in text


@needs_hf
def test_inputs_sharded_bin_and_state_dict_give_identical_files(models, tmp_path):
    import torch

    d, model = models("llama")
    ref = tmp_path / "ref.gguf"
    ggquant.convert(d, ref, "Q8_0", quiet=True)
    want = ref.read_bytes()
    # sharded safetensors with an index
    sh = tmp_path / "sharded"
    model.save_pretrained(sh, max_shard_size="40KB")
    assert (sh / "model.safetensors.index.json").is_file()
    copy_model_dir(d, sh, lambda f: f.name.startswith("tokenizer") or f.name.endswith(".jinja"))
    ggquant.convert(sh, tmp_path / "sh.gguf", "Q8_0", quiet=True)
    # PyTorch .bin (torch.load(weights_only=True))
    pb = copy_model_dir(d, tmp_path / "bin", lambda f: not f.name.endswith(".safetensors"))
    torch.save(model.state_dict(), pb / "pytorch_model.bin")
    ggquant.convert(pb, tmp_path / "bin.gguf", "Q8_0", quiet=True)
    # state dicts from Python: torch tensors and NumPy arrays, with config and tokenizer directory
    sd = {k: v for k, v in model.state_dict().items()}
    ggquant.convert(sd, tmp_path / "sd.gguf", "Q8_0", config=d / "config.json", tokenizer_dir=d, name="Llama", quiet=True)
    npd = {k: v.numpy() for k, v in sd.items()}
    ggquant.convert(npd, tmp_path / "np.gguf", "Q8_0", config=json.loads((d / "config.json").read_text()),
                    tokenizer_dir=d, name="Llama", quiet=True)
    for name in ("sh", "bin", "sd", "np"):
        assert_same_tensors(tmp_path / f"{name}.gguf", ref, name)
    assert (tmp_path / "sh.gguf").read_bytes() != b"" and len((tmp_path / "sh.gguf").read_bytes()) == len(want)


@needs_hf
def test_bf16_checkpoint_is_read_exactly(models, tmp_path):
    import torch

    d, model = models("qwen2", dtype="bfloat16")
    out = tmp_path / "f32.gguf"
    ggquant.convert(d, out, "F32", quiet=True)
    t = gguf_tensors(out)
    w = model.model.layers[0].mlp.down_proj.weight.detach().float().numpy()
    assert np.array_equal(t["blk.0.ffn_down.weight"][1].view(np.float32).reshape(w.shape), w)
    assert str(model.dtype) == str(torch.bfloat16)


@needs_hf
def test_errors_name_the_problem(models, tmp_path):
    d, _ = models("llama")
    bad = copy_model_dir(d, tmp_path / "bad")
    cfg = json.loads((d / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPTNeoXForCausalLM"]}))
    with pytest.raises(GGQuantError, match=r"GPTNeoXForCausalLM.*supported: .*LlamaForCausalLM.*Qwen2ForCausalLM"):
        ggquant.convert(bad, tmp_path / "x.gguf", "Q8_0")
    (bad / "config.json").write_text(json.dumps({**cfg, "quantization_config": {"quant_method": "gptq", "bits": 4}}))
    with pytest.raises(GGQuantError, match="already quantized.*allow_requantize"):
        ggquant.convert(bad, tmp_path / "x.gguf", "Q8_0")
    r = ggquant.convert(bad, tmp_path / "x.gguf", "Q8_0", allow_requantize=True, quiet=True)
    assert r.path.is_file()
    # a truncated shard: the error names the file and the tensor
    (bad / "config.json").write_text(json.dumps(cfg))
    st = bad / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-1000])
    with pytest.raises(GGQuantError, match=r"model\.safetensors"):
        ggquant.convert(bad, tmp_path / "y.gguf", "Q8_0")
    assert not (tmp_path / "y.gguf").exists()
    with pytest.raises(ggquant.UnsupportedTypeError, match="unknown preset"):
        ggquant.convert(d, tmp_path / "z.gguf", "Q4_K_Z")


@needs_hf
def test_cli_dry_run_and_convert(models, tmp_path):
    d, _ = models("llama")
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "ggquant.cli", "convert", str(d), "--dry-run", "-q", "Q8_0",
           "--tensor-type", "attn_v=f16"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert "predicted file size" in p.stdout
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("blk.0.attn_v.weight"))
    assert " F16 " in line
    out = tmp_path / "o.gguf"
    p = subprocess.run([sys.executable, "-m", "ggquant.cli", "convert", str(d), "-o", str(out), "-q", "Q8_0", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0 and out.is_file() and p.stderr == ""
    p = subprocess.run([sys.executable, "-m", "ggquant.cli", "convert", str(tmp_path), "-o", str(out)],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 1 and "error" in p.stderr


@needs_hf
@pytest.mark.skipif(reach_oracles.reference_converter() is None, reason="no llama.cpp source tree (set LLAMA_CPP_DIR, or run "
                    "tests/oracle/build_oracle.sh) to compare with llama.cpp's convert_hf_to_gguf.py")
@pytest.mark.parametrize("arch", [*ARCHS, "qwen2-named-with-card", "llama-spm-tokenizer-json"])
def test_same_metadata_and_f32_tensors_as_convert_hf_to_gguf(arch, models, tmp_path):
    if arch == "qwen2-named-with-card":
        # general.* heuristics: name, basename, finetune, size label from the directory name; license, tags
        # and languages from the model card
        pytest.importorskip("yaml")
        src_dir, _ = models("qwen2")
        d = copy_model_dir(src_dir, tmp_path / "Qwen2.5-0.5B-Instruct")
        (d / "README.md").write_text(
            "---\nlicense: apache-2.0\nlanguage:\n- en\n- fr\ntags:\n- chat\npipeline_tag: text-generation\n"
            "base_model: Qwen/Qwen2.5-0.5B\ndatasets:\n- HuggingFaceH4/ultrachat_200k\n"
            "- https://huggingface.co/datasets/x/y\nmodel_creator: Someone\n---\n# A model\n")
        gen = json.loads((d / "generation_config.json").read_text())
        gen.update(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05)  # -> general.sampling.*
        (d / "generation_config.json").write_text(json.dumps(gen))
        arch = "qwen2"
    elif arch == "llama-spm-tokenizer-json":
        src_dir, _ = models("llama")
        d = copy_model_dir(src_dir, tmp_path / "llama-hf")
        n = hf_models.spm_json_tokenizer(d, 384)
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, "bos_token_id": 1, "eos_token_id": 2, "vocab_size": n}))
        arch = "llama"
    else:
        d, _ = models(arch)
    pre = {"llama": "llama-bpe", "mixtral": "llama-bpe", "qwen2": "qwen2", "qwen2moe": "qwen2"}.get(arch, "")
    # the freshly trained vocabularies have no known chkhsh: tell convert_hf_to_gguf.py the pre-tokenizer name
    reach_oracles.convert_hf_to_gguf(d, tmp_path / "ref.gguf", "f32", pre)
    ours = tmp_path / "ours.gguf"
    ggquant.convert(d, ours, "F32", quiet=True)
    a, b = gguf.GGUFReader(str(ours)), gguf.GGUFReader(str(tmp_path / "ref.gguf"))

    def kvs(r):
        return [(f.name, [int(t) for t in f.types], f.contents()) for f in r.fields.values() if not f.name.startswith("GGUF.")]

    assert kvs(a) == kvs(b)
    assert_same_tensors(ours, tmp_path / "ref.gguf", arch)


@needs_hf
def test_fp8_checkpoint_needs_allow_requantize_and_is_dequantized(models, tmp_path):
    import torch
    from safetensors.torch import save_file

    d, model = models("llama")
    fp8 = copy_model_dir(d, tmp_path / "fp8", lambda f: not f.name.endswith(".safetensors"))
    sd, expect = {}, {}
    for k, v in model.state_dict().items():
        v = v.detach().contiguous()
        if k.endswith("proj.weight"):  # block-scaled FP8 as DeepSeek/Qwen FP8 checkpoints store it
            blocks = torch.zeros(((v.shape[0] + 31) // 32, (v.shape[1] + 31) // 32))
            for i in range(blocks.shape[0]):
                for j in range(blocks.shape[1]):
                    blocks[i, j] = v[32 * i:32 * i + 32, 32 * j:32 * j + 32].abs().max() / 448.0
            scale = blocks.repeat_interleave(32, 0).repeat_interleave(32, 1)[: v.shape[0], : v.shape[1]]
            q = (v / scale).to(torch.float8_e4m3fn)
            sd[k], sd[k + "_scale_inv"] = q, blocks
            expect[k] = q.float() * scale  # convert_hf_to_gguf.py's dequant_simple
        else:
            sd[k] = v
    save_file(sd, str(fp8 / "model.safetensors"))
    cfg = json.loads((d / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "fp8", "weight_block_size": [32, 32]}
    (fp8 / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GGQuantError, match="already quantized"):
        ggquant.convert(fp8, tmp_path / "x.gguf", "F32")
    r = ggquant.convert(fp8, tmp_path / "x.gguf", "F32", allow_requantize=True, quiet=True)
    t = gguf_tensors(r.path)
    w = expect["model.layers.1.mlp.down_proj.weight"].numpy()
    assert np.array_equal(t["blk.1.ffn_down.weight"][1].view(np.float32).reshape(w.shape), w)
    assert not any("scale" in n for n in t)


def test_imatrix_files_legacy_and_gguf(tmp_path):
    import struct

    from ggquant.convert import load_imatrix

    rng = np.random.default_rng(3)
    a, b = rng.uniform(0, 5, 64).astype(np.float32), rng.uniform(0, 5, 2 * 32).astype(np.float32)
    # legacy llama-imatrix .dat: n, then per entry: name length, name, ncall, nval, values (sum/count*ncall)
    blob = struct.pack("<i", 2)
    for name, vals, ncall in (("blk.0.attn_q.weight", a, 4), ("blk.0.ffn_down_exps.weight", b, 0)):
        blob += struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", ncall, vals.size) + vals.tobytes()
    (tmp_path / "im.dat").write_bytes(blob + struct.pack("<i", 10))
    got = load_imatrix(tmp_path / "im.dat")
    assert np.array_equal(got["blk.0.attn_q.weight"], a / np.float32(4))
    assert np.array_equal(got["blk.0.ffn_down_exps.weight"], b)  # ncall 0: used as is
    # GGUF imatrix: <name>.in_sum2 (ne0 x experts) and <name>.counts (one per expert)
    w = gguf.GGUFWriter(str(tmp_path / "im.gguf"), arch="imatrix")
    w.add_tensor("blk.0.attn_q.weight.in_sum2", a.reshape(1, 64))
    w.add_tensor("blk.0.attn_q.weight.counts", np.array([[8.0]], np.float32))
    w.add_tensor("blk.0.ffn_down_exps.weight.in_sum2", b.reshape(2, 32))
    w.add_tensor("blk.0.ffn_down_exps.weight.counts", np.array([[2.0], [0.0]], np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    got = load_imatrix(tmp_path / "im.gguf")
    assert np.array_equal(got["blk.0.attn_q.weight"], a / np.float32(8))
    assert np.array_equal(got["blk.0.ffn_down_exps.weight"][:32], b[:32] / np.float32(2))
    assert np.array_equal(got["blk.0.ffn_down_exps.weight"][32:], np.ones(32, np.float32))  # no samples: 1


@needs_hf
@pytest.mark.parametrize("arch", ["mixtral", "qwen2moe"])
def test_in_memory_moe_state_dict_with_fused_experts(arch, models, tmp_path):
    # transformers >= 5 keeps experts fused in memory (mlp.experts.gate_up_proj / down_proj, 3-D)
    d, model = models(arch)
    ref = tmp_path / "dir.gguf"
    ggquant.convert(d, ref, "Q8_0", quiet=True)
    sd = model.state_dict()
    if not any(k.endswith("experts.gate_up_proj") for k in sd):
        pytest.skip("this transformers version keeps experts unfused in memory")
    name = gguf.GGUFReader(str(ref)).fields["general.name"].contents()
    ggquant.convert(sd, tmp_path / "sd.gguf", "Q8_0", config=d, tokenizer_dir=d, name=name, quiet=True)
    a = assert_same_tensors(tmp_path / "sd.gguf", ref, arch)  # same tensors (the order follows the input's)
    assert {n for n in a if "_exps" in n}


@needs_hf
def test_nan_weight_error_names_file_and_tensor(models, tmp_path):
    from safetensors.numpy import load_file, save_file

    d, _ = models("qwen2")
    bad = copy_model_dir(d, tmp_path / "nan")
    sd = load_file(str(d / "model.safetensors"))
    sd["model.layers.1.self_attn.o_proj.weight"][3, 5] = np.nan
    save_file(sd, str(bad / "model.safetensors"))
    with pytest.raises(ggquant.NonFiniteError, match=r"model\.safetensors: model\.layers\.1\.self_attn\.o_proj\.weight -> blk\.1\.attn_output\.weight"):
        ggquant.convert(bad, tmp_path / "o.gguf", "Q8_0", quiet=True)
    assert not (tmp_path / "o.gguf").exists() and not list(tmp_path.glob("o.gguf*"))


@needs_hf
def test_progress_names_tensor_and_type_with_or_without_tqdm(models, tmp_path, capsys, monkeypatch):
    d, _ = models("llama")
    ggquant.convert(d, tmp_path / "a.gguf", "Q8_0")
    err = capsys.readouterr().err
    assert "converting" in err or "->" in err
    monkeypatch.setitem(sys.modules, "tqdm", None)  # plain-text fallback
    ggquant.convert(d, tmp_path / "b.gguf", "Q8_0")
    err = capsys.readouterr().err
    assert "blk.1.ffn_down.weight -> Q8_0" in err and "ETA" in err
    ggquant.convert(d, tmp_path / "c.gguf", "Q8_0", quiet=True)
    assert capsys.readouterr().err == ""


@needs_hf
@needs_llama
def test_split_output_loads_in_llama_cpp(models, tmp_path):
    d, _ = models("qwen2")
    ids = hf_models.reference_ids(d, hf_models.TEST_TEXT)
    whole = ggquant.convert(d, tmp_path / "whole.gguf", "Q8_0", quiet=True)
    r = ggquant.convert(d, tmp_path / "m.gguf", "Q8_0", quiet=True, split_max_tensors=8)
    shards = sorted(tmp_path.glob("m-*-of-*.gguf"))
    assert len(shards) == 4 and r.path == shards[0]  # 27 tensors, 8 per shard
    a, _ = _llama_logits(whole.path, ids)
    b, _ = _llama_logits(r.path, ids)
    assert np.array_equal(a, b)


@needs_hf
def test_ready_made_plan_and_several_outputs_in_one_pass(models, tmp_path):
    """The converter core's extension points: a Plan in place of a preset, several outputs in one pass."""
    import dataclasses

    from ggquant.convert import GGUFOutput, convert_source, hf_source, open_model

    d, _ = models("llama")
    ggquant.convert(d, tmp_path / "a.gguf", "Q4_K_M", quiet=True)
    ggquant.convert(d, tmp_path / "b.gguf", "Q8_0", quiet=True)
    plan = ggquant.convert(d, None, "Q4_K_M", dry_run=True).plan
    ggquant.convert(d, tmp_path / "c.gguf", plan, quiet=True)
    assert (tmp_path / "c.gguf").read_bytes() == (tmp_path / "a.gguf").read_bytes()
    with pytest.raises(GGQuantError, match="plan does not match"):
        ggquant.convert(d, tmp_path / "x.gguf", dataclasses.replace(plan, tensors=plan.tensors[1:]), quiet=True)
    assert not (tmp_path / "x.gguf").exists()
    source = hf_source(open_model(d))
    try:
        rs = convert_source(source, [GGUFOutput(tmp_path / "m1.gguf", "Q4_K_M"), GGUFOutput(tmp_path / "m2.gguf", "Q8_0")],
                            quiet=True)
    finally:
        source.close()
    assert [r.path for r in rs] == [tmp_path / "m1.gguf", tmp_path / "m2.gguf"]
    assert (tmp_path / "m1.gguf").read_bytes() == (tmp_path / "a.gguf").read_bytes()
    assert (tmp_path / "m2.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()
