"""ggquant imatrix / validate / diff on tiny models built in the test."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ggquant
from ggquant import GGQuantError
from ggquant.cli import main

pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

import hf_models  # noqa: E402

from ggquant.quality import compute_imatrix, diff_gguf, validate  # noqa: E402

CTX = 32
TEXT = " ".join(hf_models.CORPUS * 3)


def test_imatrix_file_round_trips_and_follows_llama_cpp(tiny_llama, tmp_path):
    d, _ = tiny_llama
    out = tmp_path / "imatrix.gguf"
    assert main(["imatrix", str(d), "-f", str(d / "text.txt"), "-o", str(out), "-c", str(CTX), "--chunks", "3",
                 "--quiet"]) == 0
    im = ggquant.read_imatrix(out)
    assert (im.chunk_count, im.chunk_size, im.datasets) == (3, CTX, [str(d / "text.txt")])
    names = {f"blk.{i}.{t}.weight" for i in range(2) for t in
             ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")}
    assert set(im.weights) == names  # no token_embd, no output (llama-imatrix's default)
    # q/k/v read the same normed input, as do gate/up: the same sums
    assert np.array_equal(im.weights["blk.0.attn_q.weight"], im.weights["blk.0.attn_v.weight"])
    assert np.array_equal(im.weights["blk.1.ffn_gate.weight"], im.weights["blk.1.ffn_up.weight"])
    assert im.weights["blk.0.ffn_down.weight"].shape == (512,) and (im.weights["blk.0.ffn_down.weight"] > 0).all()
    r = gguf.GGUFReader(str(out))  # the oracle sees llama.cpp's layout
    assert str(r.fields["general.type"].contents()) == "imatrix"
    tnames = [t.name for t in r.tensors]
    assert tnames[:2] == ["blk.0.attn_k.weight.in_sum2", "blk.0.attn_k.weight.counts"]
    bases = [n.rsplit(".", 1)[0] for n in tnames[::2]]
    assert bases == sorted(bases)
    assert r.tensors[1].data.tolist() == [3 * CTX] and list(r.tensors[0].shape) == [256]
    # the converter accepts it, and it changes what an imatrix-aware type writes
    a = ggquant.convert(d, tmp_path / "a.gguf", "Q3_K_S", imatrix=out, quiet=True).path
    b = ggquant.convert(d, tmp_path / "b.gguf", "Q3_K_S", quiet=True).path
    assert not diff_gguf(a, b).identical


def test_imatrix_of_experts(tmp_path):
    d = tmp_path / "moe"
    hf_models.build("mixtral", d, hidden=64, layers=1, vocab=384)
    data = compute_imatrix(d, np.arange(2 * CTX) % 300, ctx=CTX, progress=False)
    sums, counts = data["blk.0.ffn_down_exps.weight"]
    assert sums.shape == (4, 128) and counts.shape == (4,)
    assert counts.sum() == 2 * 2 * CTX  # every token routed to 2 of the 4 experts
    assert np.array_equal(data["blk.0.ffn_gate_exps.weight"][1], counts)
    assert data["blk.0.ffn_gate_inp.weight"][1].tolist() == [2 * CTX]
    with pytest.raises(GGQuantError, match="fewer than one chunk"):
        compute_imatrix(d, np.arange(10), ctx=CTX, progress=False)


def test_validate_exit_codes_and_report(tiny_llama, tmp_path):
    d, f = tiny_llama
    base = ["validate", "--baseline", str(d), "-f", str(d / "text.txt"), "-c", str(CTX), "--chunks", "3", "--quiet"]
    rep = tmp_path / "r.json"
    assert main(base + ["--quantized", str(f["Q8_0"]), "--max-kld", "0.01", "--json", str(rep)]) == 0
    j = json.loads(rep.read_text())
    assert j["passed"] and j["result"]["kld_mean"] > 0
    t = j["tensors"]["blk.0.attn_q.weight"]
    assert t["type"] == "Q8_0" and t["bytes"] == 256 * 256 // 32 * 34 and t["sqnr_db"] > 30 and t["max_abs_err"] > 0
    assert j["sha256"]["quantized"]["Q8_0.gguf"] == ggquant.quality.util.sha256_file(f["Q8_0"])
    assert len(j["sha256"]["text"]) == 64 and "model.safetensors" in j["sha256"]["baseline"]
    assert main(base + ["--quantized", str(f["Q2_K"]), "--max-kld", "0.0001", "--max-ppl-ratio", "10"]) == 1
    # a plan report (as ggquant convert --report writes it) gets the measured errors of its file
    plan = tmp_path / "plan.json"
    names = [t.name for t in ggquant.gguf.GGUFReader(f["Q8_0"]).tensors]
    plan.write_text(json.dumps({"format": "ggquant-plan-report", "predicted_error": 0.001,
                                "tensors": [{"name": n, "predicted_error": 0.0, "measured_error": None} for n in names]}))
    assert main(base + ["--quantized", str(f["Q8_0"]), "--json", str(rep), "--plan-report", str(plan)]) == 0
    pj, j = json.loads(plan.read_text()), json.loads(rep.read_text())
    assert pj["measured"]["kld_mean"] == j["result"]["kld_mean"] > 0 and pj["measured_error_unit"] == "mse"
    measured = {t["name"]: t["measured_error"] for t in pj["tensors"]}
    assert measured["blk.0.attn_q.weight"] == j["tensors"]["blk.0.attn_q.weight"]["mse"] > 0
    (tmp_path / "bad.json").write_text("{}")
    assert main(base + ["--quantized", str(f["Q8_0"]), "--plan-report", str(tmp_path / "bad.json")]) == 2
    assert main(base + ["--quantized", str(tmp_path / "missing.gguf")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["validate", "--baseline", str(d)])
    assert e.value.code == 2
    r = validate(d, "Q2_K", TEXT, ctx=CTX, n_chunks=2, max_ppl_ratio=0.5, progress=False)
    assert not r.passed and "PPL ratio" in r.failures[0] and r.tensors["blk.1.ffn_up.weight"]["type"] == "Q2_K"


def test_diff(tiny_llama, tmp_path, capsys):
    d, f = tiny_llama
    assert main(["diff", str(f["Q8_0"]), str(f["Q8_0"])]) == 0
    assert "identical" in capsys.readouterr().out
    rep = diff_gguf(f["Q8_0"], f["Q2_K"])
    assert not rep.identical and "general.file_type" in rep.changed
    row = rep.tensors_changed["blk.0.ffn_up.weight"]
    assert row["type"] == ("Q8_0", "Q2_K") and 0 < row["sqnr_db"] < 40
    assert main(["diff", str(f["F32"]), str(f["Q2_K"]), "--json"]) == 1
    j = json.loads(capsys.readouterr().out)
    assert j["tensors_changed"]["blk.0.attn_q.weight"]["type"] == ["F32", "Q2_K"]
    split = ggquant.convert(d, tmp_path / "s.gguf", "Q8_0", quiet=True, split_max_tensors=5).path
    assert "00001-of-" in str(split)
    assert diff_gguf(f["Q8_0"], split).identical  # split.* keys aside, the same model
    assert main(["diff", str(f["Q8_0"]), str(tmp_path / "nope.gguf")]) == 2
