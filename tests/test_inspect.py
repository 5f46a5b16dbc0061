"""ggquant inspect: GGUF (split sets too), safetensors files, sharded and MLX directories."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import ggquant
from ggquant import cli
from ggquant.gguf import GGUFValueType, GGUFWriter
from ggquant.inspect_file import inspect_file

gguf = pytest.importorskip("gguf")


def _write_gguf(path, rng, split_max_tensors=None):
    w16 = rng.standard_normal((8, 64)).astype(np.float16)
    w32 = rng.standard_normal((64,)).astype(np.float32)
    wq = rng.standard_normal((4, 256)).astype(np.float32)
    vocab = [f"tok{i}" for i in range(100)]
    with GGUFWriter(path, split_max_tensors=split_max_tensors) as w:
        w.add_kv("general.architecture", "llama")
        w.add_kv("llama.block_count", 1, GGUFValueType.UINT32)
        w.add_kv("tokenizer.ggml.tokens", vocab)
        w.add_kv("tokenizer.ggml.scores", np.arange(100, dtype=np.float32))
        w.add_tensor_info("token_embd.weight", (8, 64), "f16")
        w.add_tensor_info("output_norm.weight", (64,), "f32")
        w.add_tensor_info("blk.0.attn_q.weight", (4, 256), "q4_K")
        w.write_tensor("token_embd.weight", w16)
        w.write_tensor("output_norm.weight", w32)
        w.write_tensor("blk.0.attn_q.weight", ggquant.quantize(wq, "q4_K"))
    return [w16, w32, wq]


def test_gguf_matches_gguf_py(tmp_path, rng):
    p = str(tmp_path / "m.gguf")
    _write_gguf(p, rng)
    info = inspect_file(p)
    ref = gguf.GGUFReader(p)
    assert info.format_name == "gguf" and info.version == 3
    assert [t.name for t in info.tensors] == [t.name for t in ref.tensors]
    for ours, theirs in zip(info.tensors, ref.tensors):
        assert ours.type == theirs.tensor_type.name
        assert ours.ne == tuple(int(d) for d in theirs.shape)
        assert ours.offset == theirs.data_offset
        assert ours.nbytes == theirs.n_bytes
    assert info.n_params == 8 * 64 + 64 + 4 * 256
    assert info.tensor_bytes == 8 * 64 * 2 + 64 * 4 + 4 * 144
    assert info.bits_per_weight == pytest.approx(8 * info.tensor_bytes / info.n_params)
    assert info.metadata_types["tokenizer.ggml.tokens"] == "ARRAY[STRING]"
    assert info.metadata_types["llama.block_count"] == "UINT32"
    assert info.file_bytes == os.path.getsize(p)
    text = info.format()
    assert "{64, 8}" in text and "Q4_K" in text
    assert "... (100 items)" in text and "tok99" not in text  # long arrays abbreviated


def test_gguf_split_set_from_any_shard(tmp_path, rng):
    p = str(tmp_path / "m.gguf")
    _write_gguf(p, rng, split_max_tensors=1)
    shards = sorted(str(f) for f in tmp_path.glob("m-*-of-*.gguf"))
    assert len(shards) == 3
    info = inspect_file(shards[1])
    assert info.files == shards
    assert [t.name for t in info.tensors] == ["token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight"]
    assert [os.path.basename(t.file) for t in info.tensors] == [os.path.basename(s) for s in shards]
    assert info.metadata["split.count"] == 3
    for t in info.tensors:  # the offset points at that tensor's bytes in its own shard
        ref = gguf.GGUFReader(t.file).tensors[0]
        assert ref.name == t.name and ref.data_offset == t.offset


def test_safetensors_offsets_point_at_the_bytes(tmp_path, rng):
    arrays = {"a": rng.standard_normal((3, 5)).astype(np.float32), "b": np.arange(7, dtype=np.int64),
              "c": rng.standard_normal((2, 2)).astype(np.float16)}
    p = str(tmp_path / "x.safetensors")
    ggquant.save_file(arrays, p, metadata={"format": "pt"})
    info = inspect_file(p)
    assert info.format_name == "safetensors" and info.metadata == {"format": "pt"}
    with open(p, "rb") as f:
        raw = f.read()
    for t in info.tensors:
        assert raw[t.offset:t.offset + t.nbytes] == arrays[t.name].tobytes()
        assert t.shape == arrays[t.name].shape
    assert info.n_params == 15 + 7 + 4
    assert [t.offset for t in info.tensors] == sorted(t.offset for t in info.tensors)


def test_sharded_checkpoint_dir(tmp_path, rng):
    arrays = {f"w{i}": rng.standard_normal((16, 16)).astype(np.float32) for i in range(4)}
    ggquant.save_sharded(arrays, tmp_path, max_shard_size=2000)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 16}))
    info = inspect_file(tmp_path)
    assert len(info.files) == 4
    assert sorted(t.name for t in info.tensors) == sorted(arrays)
    assert info.metadata["config.hidden_size"] == 16
    for t in info.tensors:
        with open(t.file, "rb") as f:
            f.seek(t.offset)
            assert f.read(t.nbytes) == arrays[t.name].tobytes()


def test_mlx_dir_counts_unpacked_params(tmp_path, rng):
    x = rng.standard_normal((8, 128)).astype(np.float32)
    q = ggquant.quantize(x, "int4")
    y = ggquant.quantize(x, "int8")
    ggquant.save_file({"model.a.weight": q.weight, "model.a.scales": q.scales, "model.a.biases": q.biases,
                       "model.b.weight": y.weight, "model.b.scales": y.scales, "model.b.biases": y.biases,
                       "model.norm.weight": np.ones(128, np.float16)}, tmp_path / "model.safetensors")
    cfg = {"quantization": {"group_size": q.group_size, "bits": 4, "model.b": {"group_size": y.group_size, "bits": 8}}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    info = inspect_file(tmp_path)
    assert info.format_name == "mlx"
    by = {t.name: t for t in info.tensors}
    assert by["model.a.weight"].n_params == x.size and by["model.a.weight"].quant == f"mlx 4-bit/g{q.group_size}"
    assert by["model.b.weight"].n_params == x.size and by["model.b.weight"].quant.startswith("mlx 8-bit")
    assert by["model.a.scales"].quant == "" and by["model.norm.weight"].n_params == 128


def test_cli_json_and_text(tmp_path, rng, capsys):
    p = str(tmp_path / "m.gguf")
    _write_gguf(p, rng)
    assert cli.main(["inspect", p, "--json", "--max-array", "3"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["format"] == "gguf" and d["totals"]["tensors"] == 3
    toks = d["metadata"]["tokenizer.ggml.tokens"]
    assert toks["type"] == "ARRAY[STRING]" and toks["value"] == {"count": 100, "head": ["tok0", "tok1", "tok2"]}
    assert d["metadata"]["tokenizer.ggml.scores"]["value"]["count"] == 100
    assert [t["name"] for t in d["tensors"]] == ["token_embd.weight", "output_norm.weight", "blk.0.attn_q.weight"]
    assert d["tensors"][0]["shape"] == [8, 64] and d["tensors"][0]["ne"] == [64, 8]
    assert d["totals"]["types"] == {"F16": 1, "F32": 1, "Q4_K": 1}
    assert cli.main(["inspect", p, "--no-tensors"]) == 0
    out = capsys.readouterr().out
    assert "llama.block_count" in out and "blk.0.attn_q.weight" not in out and "totals: 3 tensors" in out


@pytest.mark.parametrize("content", [b"", b"GGUF\x03\x00\x00\x00garbage", b"\xff" * 16])
def test_bad_input_is_a_ggquant_error(tmp_path, content, capsys):
    p = tmp_path / "bad.gguf"
    p.write_bytes(content)
    with pytest.raises(ggquant.GGQuantError):
        inspect_file(p)
    assert cli.main(["inspect", str(p)]) == 1
    assert "ggquant inspect: error:" in capsys.readouterr().err


def test_missing_path_and_empty_dir(tmp_path):
    with pytest.raises(ggquant.GGQuantIOError, match="no such file"):
        inspect_file(tmp_path / "nope.gguf")
    with pytest.raises(ggquant.GGQuantIOError, match="no .safetensors or .gguf"):
        inspect_file(tmp_path)
