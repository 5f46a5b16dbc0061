"""ggquant.convert_mlx against mlx_lm: the same tensors as ``mlx_lm.convert --quantize`` writes, and a
directory ``mlx_lm.load`` opens whose logits match the unquantized model's (a tiny random Llama built
offline: config.json, bf16 safetensors, a trained byte-level BPE tokenizer)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import ggquant
import numpy as np
import pytest

mx = pytest.importorskip("mlx.core", reason="mlx is not installed (pip install 'mlx[cpu]')")
mlx_lm = pytest.importorskip("mlx_lm", reason="mlx-lm is not installed (pip install mlx-lm)")
ml_dtypes = pytest.importorskip("ml_dtypes")
pytest.importorskip("ggquant.safetensors", reason="needs ggquant's safetensors writer")

HIDDEN, LAYERS, VOCAB, INTER, HEADS, KV = 64, 2, 256, 128, 4, 2
TEXT = "The quick brown fox jumps over the lazy dog. Quantization maps weights to small integers."


def _tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - 2,
        special_tokens=[],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([TEXT] * 8, trainer)
    tok.add_special_tokens(["<s>", "</s>"])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>").save_pretrained(out)


def build_tiny_llama(
    out: Path, seed: int = 0, tie: bool = False, dtype=None, torch_dtype: str | None = None, layers: int = LAYERS
) -> None:
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV,
        "vocab_size": VOCAB,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 256,
        "tie_word_embeddings": tie,
        "hidden_act": "silu",
        "bos_token_id": VOCAB - 2,
        "eos_token_id": VOCAB - 1,
    }
    if torch_dtype is not None:
        cfg["torch_dtype"] = torch_dtype
    (out / "config.json").write_text(json.dumps(cfg))
    hd = HIDDEN // HEADS
    shapes = {
        "model.embed_tokens.weight": (VOCAB, HIDDEN),
        "model.norm.weight": (HIDDEN,),
        "lm_head.weight": (VOCAB, HIDDEN),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update(
            {
                p + "self_attn.q_proj.weight": (HIDDEN, HIDDEN),
                p + "self_attn.k_proj.weight": (KV * hd, HIDDEN),
                p + "self_attn.v_proj.weight": (KV * hd, HIDDEN),
                p + "self_attn.o_proj.weight": (HIDDEN, HIDDEN),
                p + "mlp.gate_proj.weight": (INTER, HIDDEN),
                p + "mlp.up_proj.weight": (INTER, HIDDEN),
                p + "mlp.down_proj.weight": (HIDDEN, INTER),
                p + "input_layernorm.weight": (HIDDEN,),
                p + "post_attention_layernorm.weight": (HIDDEN,),
            }
        )
    tensors = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            w = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            w = rng.standard_normal(shape) * 0.02
        tensors[name] = w.astype(np.float32).astype(dtype or ml_dtypes.bfloat16)
    ggquant.save_file(tensors, out / "model.safetensors", {"format": "pt"})
    _tokenizer(out)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny") / "llama"
    build_tiny_llama(d)
    return d


def _logits(model_dir: Path) -> np.ndarray:
    model, tokenizer = mlx_lm.load(str(model_dir))
    ids = mx.array([tokenizer.encode(TEXT)])
    out = model(ids)
    return np.array(out.astype(mx.float32))[0]


def _arrays(d: Path) -> dict[str, np.ndarray]:
    out = {}
    for f in sorted(d.glob("model*.safetensors")):
        for k, v in mx.load(str(f)).items():
            out[k] = np.array(v.view(mx.uint16)) if v.dtype == mx.bfloat16 else np.array(v)
    return out


@pytest.mark.parametrize(
    "quant,mode,bits,gs",
    [("mlx:int4", "affine", 4, 32), ("affine", "affine", 4, 64), ("mlx:int8", "affine", 8, 64),
     ("mlx:mxfp8", "mxfp8", 8, 32), ("mlx:nvfp4", "nvfp4", 4, 16)],
)  # fmt: skip
def test_same_tensors_as_mlx_lm_convert(tiny, tmp_path, quant, mode, bits, gs):
    """``affine`` / ``mlx:<mode>``: one type on every matrix, as ``mlx_lm.convert -q --q-mode M``."""
    ours = tmp_path / "ours"
    r = ggquant.convert_mlx(tiny, ours, quant, quiet=True)
    assert r.path == ours
    ref = tmp_path / "ref"
    mlx_lm.convert(str(tiny), str(ref), quantize=True, q_group_size=gs, q_bits=bits, q_mode=mode)
    a, b = _arrays(ours), _arrays(ref)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k], b[k]), f"{k} differs from mlx_lm.convert"
    cfg, ref_cfg = (json.loads((d / "config.json").read_text()) for d in (ours, ref))
    assert cfg["quantization"] == ref_cfg["quantization"] == {"group_size": gs, "bits": bits, "mode": mode}
    assert cfg["quantization_config"] == cfg["quantization"]
    index = json.loads((ours / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(a)
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in a.values()) == r.total_size
    assert np.array_equal(_logits(ours), _logits(ref))


def test_mlx_lm_loads_and_logits_track_the_unquantized_model(tiny, tmp_path):
    base = _logits(tiny)
    # relative logit error and top-1 agreement (bf16 weights and compute; measured: int8 0.019 / 0.98,
    # mxfp8 0.047 / 0.94, int4 0.13 / 0.87, nvfp4 0.16 / 0.85)
    for quant, tol, agree in (
        ("int8", 0.04, 0.93),
        ("mxfp8", 0.1, 0.85),
        ("int4", 0.25, 0.75),
        ("mlx:nvfp4", 0.3, 0.7),
    ):
        out = tmp_path / quant.replace(":", "_")
        ggquant.convert_mlx(tiny, out, quant, quiet=True)
        got = _logits(out)
        assert got.shape == base.shape
        rel = np.linalg.norm(got - base) / np.linalg.norm(base)
        assert rel < tol, f"{quant}: relative logit error {rel:.4f}"
        assert np.mean(np.argmax(got, -1) == np.argmax(base, -1)) > agree, quant


def test_dry_run_writes_nothing_and_predicts_sizes(tiny, tmp_path):
    out = tmp_path / "dry"
    r = ggquant.convert_mlx(tiny, out, "int4", dry_run=True)
    assert not out.exists() and r.path is None
    real = ggquant.convert_mlx(tiny, out, "int4", quiet=True)
    assert r.total_size == real.total_size
    assert r.shards == real.shards
    *rows, footer = r.format().splitlines()
    assert "int4" not in "".join(rows) and "affine 4b/64" in r.format() and "affine 8b/64" in r.format()
    assert "(ollama:int4)" in footer


def test_output_dir_rules_and_sharding(tiny, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(ggquant.GGQuantIOError):
        ggquant.convert_mlx(tiny, out, "int4", quiet=True)
    sharded = tmp_path / "sharded"
    r = ggquant.convert_mlx(tiny, sharded, "int4", quiet=True, max_shard_size=60_000)
    assert len(r.shards) > 1
    files = sorted(p.name for p in sharded.glob("model-*.safetensors"))
    assert files == sorted(r.shards) and files[0].endswith(f"-of-{len(files):05d}.safetensors")
    assert not list(tmp_path.glob(".sharded.partial-*"))
    single = tmp_path / "single"
    ggquant.convert_mlx(tiny, single, "int4", quiet=True)
    assert _arrays(sharded).keys() == _arrays(single).keys()
    assert np.array_equal(_logits(sharded), _logits(single))


def test_tied_embeddings_like_mlx_lm(tmp_path):
    """A checkpoint that ties lm_head to the embeddings but still stores lm_head.weight."""
    src = tmp_path / "tied"
    build_tiny_llama(src, seed=1, tie=True)
    ours, ref = tmp_path / "ours", tmp_path / "ref"
    ggquant.convert_mlx(src, ours, "mlx:int4", quiet=True)
    mlx_lm.convert(str(src), str(ref), quantize=True, q_group_size=32, q_bits=4)
    a, b = _arrays(ours), _arrays(ref)
    assert sorted(a) == sorted(b) and not any(k.startswith("lm_head") for k in a)
    assert np.array_equal(_logits(ours), _logits(ref))


def test_cli_branch(tiny, tmp_path, capsys):
    """cli.run_mlx_convert: what ``ggquant convert DIR --format mlx -q int4 -o OUT`` runs."""
    import argparse

    from ggquant.cli import run_mlx_convert as run_cli

    def ns(**kw):
        base = {"model": str(tiny), "outfile": str(tmp_path / "cli"), "quant": "int4", "group_size": None,
                "dry_run": False, "quiet": True, "allow_requantize": False, "threads": None, "imatrix": None}  # fmt: skip
        base.update(kw)
        return argparse.Namespace(**base)

    assert run_cli(ns(dry_run=True)) == 0
    assert "affine 4b/64" in capsys.readouterr().out and not (tmp_path / "cli").exists()
    assert run_cli(ns()) == 0
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["quantization"]["group_size"] == 64
    assert run_cli(ns(quant="Q4_K_M", outfile=str(tmp_path / "x"))) == 2
    assert run_cli(ns(imatrix="f.dat", outfile=str(tmp_path / "y"))) == 2
    assert run_cli(ns(outfile=str(tmp_path / "cli"))) == 1  # exists and is not empty
    assert "not an empty directory" in capsys.readouterr().err


@pytest.mark.parametrize(("src", "torch_dtype"), [(np.float32, "bfloat16"), (None, "float16"), (np.float16, "float32")])
def test_dtype_conversion_like_mlx_lm(tmp_path, src, torch_dtype):
    """config.json's torch_dtype converts the weights before quantizing, as mlx_lm.convert does."""
    model = tmp_path / "m"
    build_tiny_llama(model, seed=2, dtype=src, torch_dtype=torch_dtype)
    ours, ref = tmp_path / "ours", tmp_path / "ref"
    ggquant.convert_mlx(model, ours, "mlx:int4", quiet=True)
    mlx_lm.convert(str(model), str(ref), quantize=True, q_group_size=32, q_bits=4)
    a, b = _arrays(ours), _arrays(ref)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    kept = tmp_path / "kept"
    ggquant.convert_mlx(model, kept, "mlx:int4", quiet=True, dtype=None)
    src_name = "bfloat16" if src is None else np.dtype(src).name
    assert mx.load(str(kept / "model.safetensors"))["model.norm.weight"].dtype == getattr(mx, src_name)
    ollama = tmp_path / "ollama"  # Ollama quantizes each tensor from its stored dtype: no torch_dtype cast
    ggquant.convert_mlx(model, ollama, "int4", quiet=True)
    arrays = mx.load(str(ollama / "model.safetensors"))
    assert arrays["model.norm.weight"].dtype == arrays["lm_head.scales"].dtype == getattr(mx, src_name)


def test_command_line(tiny, tmp_path, capsys):
    """``ggquant convert DIR --format mlx -q int4 -o OUT_DIR`` through the real parser."""
    from ggquant.cli import main

    out = tmp_path / "out"
    assert main(["convert", str(tiny), "--format", "mlx", "-q", "int4", "-o", str(out), "--quiet"]) == 0
    q = json.loads((out / "config.json").read_text())["quantization"]
    assert {k: q[k] for k in ("group_size", "bits", "mode")} == {"group_size": 64, "bits": 4, "mode": "affine"}
    assert q["model.layers.0.self_attn.v_proj"] == {"group_size": 64, "bits": 8, "mode": "affine"}
    assert main(["convert", str(tiny), "--format", "mlx", "-q", "affine", "--q-bits", "8", "--group-size", "128",
                 "--dry-run"]) == 0  # fmt: skip
    assert "affine 8b/128" in capsys.readouterr().out
    assert main(["convert", str(tiny), "--format", "mlx", "--q-mode", "mxfp8", "--dry-run"]) == 0
    assert "mxfp8 8b/32" in capsys.readouterr().out
    assert main(["convert", str(tiny), "--format", "mlx", "-q", "int4", "--q-mode", "mxfp8", "--dry-run"]) == 2
    assert main(["convert", str(tiny), "--format", "mlx", "-q", "int8", "--group-size", "128", "--dry-run"]) == 1
    assert "Ollama's type" in capsys.readouterr().err
    assert main(["convert", str(tiny), "--format", "mlx", "--imatrix", "x.dat", "--dry-run"]) == 2
    assert main(["convert", str(tiny), "--group-size", "64", "--dry-run"]) == 2  # GGUF takes no group size


def test_already_quantized_policy_is_the_gguf_converters(tiny, tmp_path):
    """An MLX-quantized config is refused with the same message as convert(); allow_requantize lets it through."""
    src = tmp_path / "q"
    src.mkdir()
    for f in tiny.iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((tiny / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, "quantization": {"group_size": 64, "bits": 4}}))
    with pytest.raises(ggquant.FormatError, match="already quantized.*allow_requantize"):
        ggquant.convert_mlx(src, tmp_path / "out", "int4", quiet=True)
    assert not (tmp_path / "out").exists()
    r = ggquant.convert_mlx(src, tmp_path / "out", "int4", quiet=True, allow_requantize=True)
    assert json.loads((r.path / "config.json").read_text())["quantization"]["group_size"] == 64


@pytest.fixture(scope="module")
def tiny10(tmp_path_factory) -> Path:
    """Ten layers: the mixed recipes' first/last eighth and every-third cadence all show (layers 0, 3, 6, 8, 9)."""
    d = tmp_path_factory.mktemp("tiny10") / "llama"
    build_tiny_llama(d, seed=3, layers=10)
    return d


@pytest.mark.parametrize(
    ("recipe", "group_size"), [("mixed_3_4", None), ("mixed_2_6", None), ("mixed_3_6", 32), ("mixed_4_6", None)]
)
def test_quant_predicate_like_mlx_lm_convert(tiny10, tmp_path, recipe, group_size):
    """quant_predicate=mixed_*: the tensors mlx_lm.convert(..., quant_predicate=...) writes, and its config.json."""
    ours, ref = tmp_path / "ours", tmp_path / "ref"
    r = ggquant.convert_mlx(tiny10, ours, group_size=group_size, quant_predicate=recipe, quiet=True)
    mlx_lm.convert(str(tiny10), str(ref), quantize=True, q_group_size=group_size, quant_predicate=recipe)
    a, b = _arrays(ours), _arrays(ref)
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k
    cfg, ref_cfg = (json.loads((d / "config.json").read_text()) for d in (ours, ref))
    assert cfg["quantization"] == ref_cfg["quantization"]
    assert cfg["quantization_config"] == ref_cfg["quantization_config"]
    low, high = (int(x) for x in recipe.split("_")[1:])
    bits = {k: v["bits"] for k, v in cfg["quantization"].items() if isinstance(v, dict)}
    assert bits["lm_head"] == high and bits["model.layers.3.mlp.down_proj"] == high
    assert bits["model.layers.4.mlp.down_proj"] == low and bits["model.layers.0.self_attn.q_proj"] == low
    assert {t.quant.bits for t in r.tensors if t.quant} == {low, high}
    model, tokenizer = mlx_lm.load(str(ours))
    assert model.model.layers[9].self_attn.v_proj.bits == high
    assert np.array_equal(_logits(ours), _logits(ref))
    text = mlx_lm.generate(model, tokenizer, "The quick", max_tokens=4, verbose=False)
    assert isinstance(text, str) and text == mlx_lm.generate(*mlx_lm.load(str(ref)), "The quick", max_tokens=4)


def test_quant_predicate_errors_as_mlx_lm(tiny, tmp_path):
    with pytest.raises(ggquant.GGQuantError, match="affine mode only"):
        ggquant.convert_mlx(tiny, tmp_path / "a", "mlx:mxfp4", quant_predicate="mixed_3_4", dry_run=True)
    with pytest.raises(ggquant.GGQuantError, match="unknown quant_predicate"):
        ggquant.convert_mlx(tiny, tmp_path / "b", quant_predicate="mixed_5_8", dry_run=True)
    with pytest.raises(ggquant.GGQuantError, match="Ollama's type"):
        ggquant.convert_mlx(tiny, tmp_path / "c", "int4", quant_predicate="mixed_3_4", dry_run=True)
    assert not any(tmp_path.iterdir())


def test_quant_predicate_command_line(tiny10, tmp_path):
    """``--quant-predicate`` writes what the Python API writes, byte for byte."""
    from ggquant.cli import main

    cli, api = tmp_path / "cli", tmp_path / "api"
    assert main(["convert", str(tiny10), "--format", "mlx", "--quant-predicate", "mixed_4_6", "-o", str(cli),
                 "--quiet"]) == 0  # fmt: skip
    ggquant.convert_mlx(tiny10, api, quant_predicate="mixed_4_6", quiet=True)
    for f in sorted(p.name for p in api.iterdir()):
        assert (cli / f).read_bytes() == (api / f).read_bytes(), f
    assert main(["convert", str(tiny10), "--quant-predicate", "mixed_4_6", "--dry-run"]) == 2  # GGUF takes none


# Ollama's int4 rule, written out by hand from ollama/ollama (commit fb30760, 2026-08):
# x/create/create.go GetTensorQuantization (with ShouldQuantize, isStackedExpertWeight, isRoutingGate,
# isAligned), x/create/quantpolicy.go eightBit / isVision, and x/quant/quant.go byType (int4 = affine 4/64,
# int8 = affine 8/64, nvfp4 = 4/16, mxfp4 = 4/32, mxfp8 = 8/32).
A4, A8, NV4, MX4, MX8 = ("affine", 4, 64), ("affine", 8, 64), ("nvfp4", 4, 16), ("mxfp4", 4, 32), ("mxfp8", 8, 32)
OLLAMA_RULE = [
    # name, shape, int4, nvfp4, mxfp4, int8, mxfp8
    ("model.layers.0.self_attn.q_proj.weight", (64, 64), A4, NV4, MX4, A8, MX8),
    ("model.layers.0.self_attn.k_proj.weight", (32, 64), A8, MX8, MX8, A8, MX8),   # k/v/down: 8 bits
    ("model.layers.0.self_attn.v_proj.weight", (32, 64), A8, MX8, MX8, A8, MX8),
    ("model.layers.0.self_attn.o_proj.weight", (64, 64), A4, NV4, MX4, A8, MX8),
    ("model.layers.0.mlp.down_proj.weight", (64, 128), A8, MX8, MX8, A8, MX8),
    ("model.layers.0.mlp.up_proj.weight", (128, 64), A4, NV4, MX4, A8, MX8),
    ("model.layers.0.mlp.gate_proj.weight", (128, 64), A4, NV4, MX4, A8, MX8),
    ("lm_head.weight", (256, 64), A8, MX8, MX8, A8, MX8),                           # lm_head: 8 bits
    ("lm_head.weight", (256, 96), None, MX8, MX8, None, MX8),                       # ... if the groups fit
    ("model.embed_tokens.weight", (256, 64), None, None, None, None, None),         # "embed": kept
    ("model.layers.0.input_layernorm.weight", (64,), None, None, None, None, None),
    ("model.layers.0.post_attention_layernorm.weight", (64,), None, None, None, None, None),
    ("model.norm.weight", (64,), None, None, None, None, None),
    ("model.layers.0.self_attn.q_norm.weight", (64, 64), None, None, None, None, None),  # "norm" in the name
    ("model.layers.0.self_attn.o_proj.bias", (64, 64), None, None, None, None, None),
    ("model.layers.0.mlp.gate_proj.weight", (16, 32), None, None, None, None, None),  # < 1024 elements
    ("model.layers.0.mlp.gate_proj.weight", (64, 96), None, NV4, MX4, None, MX8),    # 96: no groups of 64
    ("model.layers.0.self_attn.v_proj.weight", (32, 96), None, MX8, MX8, None, MX8),
    ("model.layers.0.self_attn.v_proj.weight", (32, 48), None, NV4, None, None, None),  # mxfp8 needs 32
    ("model.layers.1.mlp.gate.weight", (8, 128), None, None, None, None, None),      # routing gate
    ("model.layers.1.mlp.shared_expert_gate.weight", (64, 128), None, None, None, None, None),
    ("model.layers.1.mlp.experts.3.down_proj.weight", (64, 128), A8, NV4, MX4, A8, MX8),  # fp4: experts not promoted
    ("model.layers.1.mlp.experts.3.up_proj.weight", (128, 64), A4, NV4, MX4, A8, MX8),
    ("model.layers.1.mlp.experts.gate_up_proj.weight", (4, 128, 64), A4, NV4, MX4, A8, MX8),  # stacked, 3-D
    ("model.layers.1.mlp.up_proj.weight", (4, 128, 64), None, None, None, None, None),  # 3-D, not experts
    ("vision_tower.blocks.0.attn.qkv.weight", (192, 64), None, None, None, None, None),
    ("model.visual.blocks.0.mlp.down_proj.weight", (64, 128), None, None, None, None, None),
    ("audio_tower.layers.0.fc1.weight", (128, 64), None, None, None, None, None),
]  # fmt: skip


@pytest.mark.parametrize("column,qtype", enumerate(["int4", "nvfp4", "mxfp4", "int8", "mxfp8"]))
def test_ollama_rule_table(column, qtype):
    from ggquant.mlx_recipes import mlx_recipe

    recipe = mlx_recipe(qtype)
    for name, shape, *want in OLLAMA_RULE:
        got = recipe.tensor(name, shape, "BF16")
        assert (None if got is None else tuple(got)) == want[column], (qtype, name, shape)
    assert recipe.tensor("model.layers.0.mlp.up_proj.weight", (128, 64), "I32") is None  # not a float


def test_ollama_int4_conversion(tiny, tmp_path):
    """-q int4 writes Ollama's choice per tensor; each quantized tensor is mx.quantize of the source at its
    params; the embedding stays bf16; mlx_lm loads it (per-layer config entries) and generates."""
    out = tmp_path / "ollama"
    r = ggquant.convert_mlx(tiny, out, "int4", quiet=True)
    table = {(name, shape): want[0] for name, shape, *want in OLLAMA_RULE}
    src = mx.load(str(tiny / "model.safetensors"))
    got = _arrays(out)
    assert len(r.tensors) == len(src)
    for t in r.tensors:
        base = t.name[: -len("weight")]
        want = table[re.sub(r"layers\.\d+\.", "layers.0.", t.name), t.shape]
        assert (None if t.quant is None else tuple(t.quant)) == want, t.name
        if want is None:
            assert base + "scales" not in got
            continue
        mode, bits, gs = want
        w, s, b = mx.quantize(src[t.name], group_size=gs, bits=bits, mode=mode)
        assert np.array_equal(got[t.name], np.array(w)), t.name
        assert np.array_equal(got[base + "scales"], np.array(s.view(mx.uint16))), t.name
        assert np.array_equal(got[base + "biases"], np.array(b.view(mx.uint16))), t.name
    assert got["model.embed_tokens.weight"].dtype == np.uint16  # bf16 bits: kept
    q = json.loads((out / "config.json").read_text())["quantization"]
    assert q["model.layers.1.mlp.down_proj"] == {"group_size": 64, "bits": 8, "mode": "affine"}
    assert q["lm_head"]["bits"] == 8 and q["model.layers.1.mlp.up_proj"]["bits"] == 4
    model, tokenizer = mlx_lm.load(str(out))
    assert model.model.layers[1].self_attn.k_proj.bits == 8 and model.model.layers[1].mlp.gate_proj.bits == 4
    assert isinstance(mlx_lm.generate(model, tokenizer, "The quick", max_tokens=4), str)


def test_ollama_own_policy_architectures_are_refused():
    """Ollama gives some architectures a policy of their own (create.go tensorImportTransformRegistry)."""
    from ggquant.mlx_recipes import mlx_recipe

    cfg = {"architectures": ["Qwen3NextForCausalLM"], "num_hidden_layers": 2}
    with pytest.raises(ggquant.FormatError, match="policy of its own"):
        mlx_recipe("int4", config=cfg)
    assert mlx_recipe("mlx:int4", config=cfg).kind == "uniform"
    assert mlx_recipe("int4", config={"architectures": ["LlamaForCausalLM"]}).kind == "ollama:int4"


def test_evaluator_reads_mlx_lm_recipe_directories(tiny10, tmp_path):
    """ggquant.quality reads a mixed_* directory as mlx_lm writes it ("group_size": null per layer)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from ggquant.quality import Evaluator

    ours, ref = tmp_path / "ours", tmp_path / "ref"
    ggquant.convert_mlx(tiny10, ours, group_size=64, quant_predicate="mixed_3_4", quiet=True)
    mlx_lm.convert(str(tiny10), str(ref), quantize=True, quant_predicate="mixed_3_4")
    assert json.loads((ref / "config.json").read_text())["quantization"]["lm_head"]["group_size"] is None
    ev = Evaluator(tiny10, TEXT * 8, ctx=32, progress=False)
    a, b = ev.evaluate(ours), ev.evaluate(ref)
    assert a.kld_mean > 0 and a.kld_mean == b.kld_mean


def test_inspect_reads_recipe_directories(tiny10, tmp_path):
    """``ggquant inspect`` on a mixed_* directory (mlx_lm's "group_size": null) and on Ollama's int4 layout."""
    from ggquant.inspect_file import inspect_file

    mixed, ollama = tmp_path / "mixed", tmp_path / "ollama"
    mlx_lm.convert(str(tiny10), str(mixed), quantize=True, quant_predicate="mixed_2_6")
    ggquant.convert_mlx(tiny10, ollama, "int4", quiet=True)
    by = {t.name: t for t in inspect_file(mixed).tensors}
    assert by["lm_head.weight"].quant == "mlx 6-bit/g64" and by["lm_head.weight"].n_params == VOCAB * HIDDEN
    assert by["model.layers.4.mlp.up_proj.weight"].quant == "mlx 2-bit/g64"
    by = {t.name: t for t in inspect_file(ollama).tensors}
    assert by["model.layers.4.self_attn.v_proj.weight"].quant == "mlx 8-bit/g64"
    assert by["model.layers.4.self_attn.q_proj.weight"].quant == "mlx 4-bit/g64"
    assert by["model.embed_tokens.weight"].quant == "" and by["model.embed_tokens.weight"].type == "BF16"
