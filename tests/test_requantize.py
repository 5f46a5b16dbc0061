"""ggquant.quantize_file / ``ggquant quantize``: GGUF -> GGUF, whole files byte-identical to llama_model_quantize.

The oracle is libllama's ``llama_model_quantize`` (what llama-quantize runs; tests/reach_oracles.py), called
with the same arguments; the imatrix keys are passed as the KV overrides llama-quantize's ``main`` builds.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

import ggquant
import hf_models
import llama_oracle
from reach_oracles import llama_quantize
from ggquant import GGMLType, cli
from ggquant.convert import stream
from ggquant.plan import LLAMA_FTYPE

gguf = pytest.importorskip("gguf")
pytest.importorskip("transformers")
if llama_oracle.available() is not None:
    pytest.skip(str(llama_oracle.available()), allow_module_level=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """{(arch, outtype): path} of GGUF inputs converted from tiny random transformers models."""
    root = tmp_path_factory.mktemp("rq")
    out = {}

    def get(arch: str, outtype: str, **kw) -> Path:
        key = (arch, outtype, tuple(sorted(kw.items())))
        if key not in out:
            d = root / f"{arch}-hf"
            if not d.exists():
                hf_models.build(arch, d, hidden=256, layers=2, vocab=384)
            p = root / f"{arch}-{outtype}-{len(out)}.gguf"
            ggquant.convert(d, p, outtype, quiet=True, **kw)
            out[key] = p if p.exists() else sorted(root.glob(f"{p.stem}-00001-of-*.gguf"))[0]
        return out[key]

    return get


@pytest.mark.parametrize("src", ["F32", "F16", "BF16"])
@pytest.mark.parametrize("preset", ["Q4_K_M", "Q5_K_S", "Q6_K", "Q8_0", "Q4_0", "IQ4_XS", "F16", "BF16", "q5_K"])
def test_whole_file_equals_llama_quantize(sources, tmp_path, src, preset):
    inp = sources("llama", src)
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    r = ggquant.quantize_file(inp, ours, preset)
    llama_quantize(inp, theirs, r.plan.preset if preset != "q5_K" else "Q5_K_M", pure=preset == "q5_K")
    assert _sha(ours) == _sha(theirs)
    # what llama-quantize changes: the order of tensors and the two keys moved last
    rd = gguf.GGUFReader(str(ours))
    names = [t.name for t in rd.tensors]
    assert names[:3] == ["output.weight", "output_norm.weight", "token_embd.weight"]
    assert list(rd.fields)[-2:] == ["general.quantization_version", "general.file_type"]


def test_moe_with_imatrix_dict(sources, tmp_path, rng):
    inp = sources("qwen2moe", "F16")
    rd = ggquant.gguf.GGUFReader(inp)
    imx = {}
    for t in rd.tensors:
        if len(t.shape) >= 2 and t.name != "token_embd.weight":
            n_exp = t.shape[0] if len(t.shape) == 3 else 1
            imx[t.name] = rng.uniform(0.1, 4.0, n_exp * t.shape[-1]).astype(np.float32)
    rd.close()
    assert any(k.endswith("_exps.weight") for k in imx)
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    ggquant.quantize_file(inp, ours, "Q4_K_M", imatrix=imx)
    llama_quantize(inp, theirs, "Q4_K_M", imatrix=imx)
    assert _sha(ours) == _sha(theirs)
    plain = tmp_path / "plain.gguf"
    ggquant.quantize_file(inp, plain, "Q4_K_M")
    assert _sha(plain) != _sha(ours)  # the weights were used


def test_batch_size_and_threads_do_not_change_bytes(sources, tmp_path, monkeypatch):
    # tiny batches: every tensor (experts too) cut into row chunks, copied tensors included
    inp = sources("qwen2moe", "F16")
    ref = tmp_path / "ref.gguf"
    ggquant.quantize_file(inp, ref, "Q4_K_M")
    monkeypatch.setattr(stream, "BATCH_BYTES", 3000)
    for n in (1, 3):
        out = tmp_path / f"n{n}.gguf"
        ggquant.quantize_file(inp, out, "Q4_K_M", nthreads=n)
        assert _sha(out) == _sha(ref), n


def _write_legacy_imatrix(path: Path, entries: dict[str, np.ndarray], ncall: int, chunks: int, dataset: str) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, v in entries.items():
            b = name.encode()
            f.write(struct.pack("<i", len(b)) + b + struct.pack("<ii", ncall, v.size))
            f.write((v * ncall).astype("<f4").tobytes())
        d = dataset.encode()
        f.write(struct.pack("<ii", chunks, len(d)) + d)


def test_imatrix_file_adds_llama_quantize_keys(sources, tmp_path, rng):
    inp = sources("llama", "F32")
    rd = ggquant.gguf.GGUFReader(inp)
    entries = {t.name: rng.uniform(0.1, 3.0, t.shape[-1]).astype(np.float32)
               for t in rd.tensors if len(t.shape) == 2 and t.name != "token_embd.weight"}
    rd.close()
    imx_path = tmp_path / "imatrix.dat"
    _write_legacy_imatrix(imx_path, entries, ncall=10, chunks=42, dataset="calibration-" + "x" * 150 + ".txt")
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    r = ggquant.quantize_file(inp, ours, "Q4_K_M", imatrix=str(imx_path))
    weights = ggquant.load_imatrix(imx_path)
    kv = [("quantize.imatrix.file", str(imx_path).encode()[:127]),
          ("quantize.imatrix.dataset", ("calibration-" + "x" * 150 + ".txt").encode()[:127]),
          ("quantize.imatrix.entries_count", len(weights)), ("quantize.imatrix.chunks_count", 42)]
    llama_quantize(inp, theirs, "Q4_K_M", imatrix=weights, kv=kv)
    assert _sha(ours) == _sha(theirs)
    assert list(r.metadata)[-4:] == [k for k, _ in kv]
    f = gguf.GGUFReader(str(ours)).fields
    assert f["quantize.imatrix.chunks_count"].types[0] == gguf.GGUFValueType.UINT32
    assert len(bytes(f["quantize.imatrix.dataset"].parts[-1])) == 127


def test_split_input_one_output_and_keep_split(sources, tmp_path):
    inp = sources("llama", "F16", split_max_tensors=7)
    assert inp.name.endswith("-00001-of-00003.gguf")
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    ggquant.quantize_file(inp, ours, "Q4_K_M")
    llama_quantize(inp, theirs, "Q4_K_M")
    assert _sha(ours) == _sha(theirs)
    assert "split.count" not in gguf.GGUFReader(str(ours)).fields
    r = ggquant.quantize_file(inp, tmp_path / "ks.gguf", "Q8_0", keep_split=True)
    llama_quantize(inp, tmp_path / "ref", "Q8_0", keep_split=True)
    refs = sorted(tmp_path.glob("ref-*-of-*.gguf"))
    assert [Path(p).name for p in r.paths] == [f"ks-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert len(refs) == 3
    for p, ref in zip(r.paths, refs):
        assert _sha(Path(p)) == _sha(ref), p


def test_keep_split_of_unsplit_input(sources, tmp_path):
    inp = sources("llama", "F16")
    r = ggquant.quantize_file(inp, tmp_path / "one.gguf", "Q8_0", keep_split=True)
    llama_quantize(inp, tmp_path / "ref", "Q8_0", keep_split=True)
    assert [Path(p).name for p in r.paths] == ["one-00001-of-00001.gguf"]
    assert _sha(Path(r.paths[0])) == _sha(tmp_path / "ref-00001-of-00001.gguf")


def test_type_options_equal_llama_quantize(sources, tmp_path):
    inp = sources("llama", "F32")
    opts = dict(tensor_types=[("attn_v", "q8_0"), (r"blk\.1\.ffn_down", "q4_0")], token_embedding_type="q4_K",
                output_tensor_type="q8_0")
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    r = ggquant.quantize_file(inp, ours, "Q5_K_M", tensor_types=[f"{p}={t}" for p, t in opts["tensor_types"]],
                              token_embedding_type="q4_K", output_tensor_type="q8_0")
    llama_quantize(inp, theirs, "Q5_K_M", **opts)
    assert _sha(ours) == _sha(theirs)
    assert r.plan.tensor("blk.1.ffn_down.weight").type == GGMLType.Q4_0
    assert r.plan.tensor("token_embd.weight").type == GGMLType.Q4_K


def test_quantized_input_refused_then_allowed(sources, tmp_path):
    q8 = tmp_path / "q8.gguf"
    ggquant.quantize_file(sources("llama", "F16"), q8, "Q8_0")
    out = tmp_path / "q4.gguf"
    with pytest.raises(ggquant.GGQuantError, match=r"q8\.gguf is already quantized \(Q8_0\); requantizing loses "
                                                     r"quality: pass --allow-requantize"):
        ggquant.quantize_file(q8, out, "Q4_K_M")
    assert not out.exists()
    ggquant.quantize_file(q8, out, "Q4_K_M", allow_requantize=True)
    llama_quantize(q8, tmp_path / "ref.gguf", "Q4_K_M", allow_requantize=True)
    assert _sha(out) == _sha(tmp_path / "ref.gguf")
    same = tmp_path / "same.gguf"  # nothing changes type: copied, no flag needed (as llama-quantize)
    ggquant.quantize_file(q8, same, "Q8_0")
    llama_quantize(q8, tmp_path / "ref8.gguf", "Q8_0")
    assert _sha(same) == _sha(tmp_path / "ref8.gguf")


def test_cli_quantize_and_dry_run(sources, tmp_path, capsys):
    inp = sources("llama", "BF16")
    out = tmp_path / "cli.gguf"
    assert cli.main(["quantize", str(inp), str(tmp_path / "dry.gguf"), "Q4_K_M", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "Q6_K" in printed and "bits per weight" in printed and not (tmp_path / "dry.gguf").exists()
    assert cli.main(["quantize", str(inp), str(out), "Q4_K_M", "--threads", "1", "--quiet"]) == 0
    llama_quantize(inp, tmp_path / "ref.gguf", "Q4_K_M")
    assert _sha(out) == _sha(tmp_path / "ref.gguf")
    dry = ggquant.quantize_file(inp, None, "Q4_K_M", dry_run=True)
    written = gguf.GGUFReader(str(out))
    assert [(t.name, int(t.tensor_type)) for t in written.tensors] == [(t.name, int(t.type)) for t in dry.plan.tensors]
    assert dry.tensor_bytes == sum(int(t.n_bytes) for t in written.tensors)
    assert cli.main(["quantize", str(out), str(tmp_path / "x.gguf"), "Q4_0"]) == 1
    assert "already quantized (Q4_K_M)" in capsys.readouterr().err


def test_errors_leave_no_file(sources, tmp_path, monkeypatch):
    inp = sources("llama", "F32")
    with pytest.raises(ggquant.GGQuantError, match="same"):
        ggquant.quantize_file(inp, inp, "Q8_0")
    with pytest.raises(ggquant.GGQuantError, match="imatrix size 3 is different"):
        ggquant.quantize_file(inp, tmp_path / "a.gguf", "Q4_K_M", imatrix={"blk.0.attn_q.weight": np.ones(3)})
    with pytest.raises(ggquant.GGQuantError, match="requires an importance matrix"):
        ggquant.quantize_file(inp, tmp_path / "a.gguf", "Q2_K_S")
    calls = []
    stop = [3]  # the call that is interrupted (0: none)
    kernels = stream.quantize_batch

    def failing(*a, **k):
        calls.append(1)
        if len(calls) == stop[0]:
            raise KeyboardInterrupt
        return kernels(*a, **k)

    monkeypatch.setattr(stream, "BATCH_BYTES", 4096)  # many kernel calls: the third is interrupted mid-file
    monkeypatch.setattr(stream, "quantize_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        ggquant.quantize_file(inp, tmp_path / "a.gguf", "Q8_0")
    assert list(tmp_path.iterdir()) == []
    # a split set: the first shards are complete when the last kernel call fails; none of them remains
    split = sources("llama", "F16", split_max_tensors=7)
    calls.clear()
    stop[0] = 0
    clean = tmp_path / "clean"
    clean.mkdir()
    ggquant.quantize_file(split, clean / "ks.gguf", "Q8_0", keep_split=True)
    assert len(list(clean.iterdir())) == 3
    shutil.rmtree(clean)
    stop[0], n_calls = len(calls), len(calls)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        ggquant.quantize_file(split, tmp_path / "ks.gguf", "Q8_0", keep_split=True)
    assert len(calls) == n_calls
    assert list(tmp_path.iterdir()) == []
