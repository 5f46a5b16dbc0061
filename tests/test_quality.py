"""ggquant.quality.Evaluator with the torch backend on tiny transformers models built in the test."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import ggquant
from ggquant import GGQuantError
from ggquant.plan import ModelInfo, plan_quantization

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import hf_models  # noqa: E402

from ggquant.quality import Evaluator, evaluate  # noqa: E402

CTX = 32
TEXT = " ".join(hf_models.CORPUS * 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-layer Llama (rows of 256 so every K-quant applies) and an Evaluator on it."""
    d = tmp_path_factory.mktemp("llama")
    model = hf_models.build("llama", d, hidden=256, layers=2, vocab=384)
    ev = Evaluator(d, TEXT, ctx=CTX, n_chunks=6, progress=False)
    return d, model, ev


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_model_against_itself_is_zero(tiny):
    _, _, ev = tiny
    assert ev.n_chunks == 6 and ev.n_tokens == 6 * (CTX - 1 - CTX // 2)
    r = ev.evaluate({})
    assert abs(r.kld_mean) < 1e-6 and r.top1 == 1.0 and abs(r.ln_ppl_ratio) < 1e-5
    assert r.ppl == pytest.approx(r.ppl_base, rel=1e-5) and r.ppl > 1
    assert abs(ev.kld_floor) < 1e-6
    assert np.array_equal(ev.tokens, ev._model.tokenize(TEXT)[: len(ev.tokens)])  # BOS substitution left no trace


def test_kld_grows_as_bits_shrink(tiny):
    _, _, ev = tiny
    k = {t: ev.evaluate(t).kld_mean for t in ("Q8_0", "Q4_0", "Q2_K")}
    assert 0 < k["Q8_0"] < k["Q4_0"] < k["Q2_K"]
    assert k["Q4_0"] > 10 * k["Q8_0"]


def test_mapping_swaps_one_tensor_and_restores_it(tiny):
    _, model, ev = tiny
    before = _state(model)
    one = ev.evaluate({"blk.0.ffn_down.weight": "q2_K"})
    assert one.kld_mean > 0 and one.label == "blk.0.ffn_down.weight=Q2_K"
    assert one.kld_mean < ev.evaluate("Q2_K").kld_mean
    after = _state(model)
    assert all(torch_equal(before[k], after[k]) for k in before)


def torch_equal(a, b):
    import torch

    return bool(torch.equal(a, b))


def test_preset_plan_and_mapping_agree(tiny):
    _, _, ev = tiny
    info = ev.model_info
    plan = plan_quantization(ev.tensors(), "Q4_K_M", info)
    a, b, c = ev.evaluate("Q4_K_M"), ev.evaluate(plan), ev.evaluate(plan.types)
    assert a.kld_mean == b.kld_mean == c.kld_mean > 0
    assert isinstance(info, ModelInfo) and info.n_layer == 2


def test_gguf_files_map_back_exactly(tiny, tmp_path):
    # the converter's F32 file is the baseline (Q/K permuted and back); its Q4_0 file is the fake-quant Q4_0
    d, _, ev = tiny
    f32 = ggquant.convert(d, tmp_path / "f32.gguf", "F32", quiet=True).path
    q4 = ggquant.convert(d, tmp_path / "q4.gguf", "Q4_0", quiet=True).path
    r0 = ev.evaluate(f32)
    assert abs(r0.kld_mean) < 1e-6 and r0.top1 == 1.0
    rq, fake = ev.evaluate(q4), ev.evaluate("Q4_0")
    assert rq.kld_mean == pytest.approx(fake.kld_mean, rel=1e-6, abs=1e-9)
    assert rq.ppl == pytest.approx(fake.ppl, rel=1e-6)


@pytest.mark.parametrize("arch", ["gemma", "mixtral", "qwen2moe", "qwen2"])
def test_other_architectures_map_back(arch, tmp_path):
    d = tmp_path / arch
    hf_models.build(arch, d, hidden=64, layers=1, vocab=384)
    ids = np.random.default_rng(0).integers(0, 300, 2 * CTX)
    ev = Evaluator(d, ids, ctx=CTX, progress=False)
    f32 = ggquant.convert(d, tmp_path / "f32.gguf", "F32", quiet=True).path
    model = ev._model.model
    before = _state(model)
    with ev._model.with_gguf(f32):  # every weight replaced by the file's, mapped back to HF layout
        inside = _state(model)
    for k, v in before.items():  # Gemma's norms went through +1 and -1 in float32
        assert np.allclose(inside[k].numpy(), v.numpy(), rtol=0, atol=1e-6 if arch == "gemma" else 0), k
    k0 = ev.evaluate(f32).kld_mean
    assert abs(k0) < 1e-6
    assert ev.evaluate("Q4_0").kld_mean > 10 * abs(k0)


def test_imatrix_mapping_changes_the_result(tiny):
    _, _, ev = tiny
    rng = np.random.default_rng(3)
    imx = {n: rng.uniform(0.01, 10, s[-1]).astype(np.float32) for n, s in ev.tensors() if len(s) == 2}
    plain = ev.evaluate({"blk.0.attn_v.weight": "q3_K"})
    weighted = ev.evaluate({"blk.0.attn_v.weight": "q3_K"}, imatrix=imx)
    assert weighted.kld_mean != plain.kld_mean


def test_one_shot_evaluate(tiny):
    d, _, _ = tiny
    r = evaluate(d, "Q8_0", TEXT, ctx=CTX, n_chunks=2, progress=False)
    assert r.n_chunks == 2 and r.kld_mean > 0
    assert ggquant.evaluate is evaluate and ggquant.EvalResult is type(r)


def test_interrupt_restores_weights(tiny, monkeypatch):
    _, model, ev = tiny
    before = _state(model)
    calls = []
    real = ev._model.logits

    def flaky(chunk, first):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(chunk, first)

    monkeypatch.setattr(ev._model, "logits", flaky)
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate("Q2_K")
    after = _state(model)
    assert all(torch_equal(before[k], after[k]) for k in before)


def test_progress_shows_chunks_and_eta(tiny, capsys, monkeypatch):
    d, _, _ = tiny
    Evaluator(d, TEXT, ctx=CTX, n_chunks=2, progress=True)
    assert "baseline" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm", None)  # plain-text fallback
    Evaluator(d, TEXT, ctx=CTX, n_chunks=2, progress=True)
    err = capsys.readouterr().err
    assert "chunk 2/2" in err and "ETA" in err
    Evaluator(d, TEXT, ctx=CTX, n_chunks=2, progress=False)
    assert "chunk" not in capsys.readouterr().err  # (transformers' own loading bar may be there)


def test_bad_input(tiny, tmp_path, monkeypatch):
    d, _, ev = tiny
    with pytest.raises(GGQuantError, match="at least 2\\*ctx"):
        Evaluator(d, "too short", ctx=CTX, progress=False)
    with pytest.raises(GGQuantError, match="not a weight"):
        ev.evaluate({"blk.9.attn_q.weight": "q4_0"})
    with pytest.raises(GGQuantError, match="unknown"):
        ev.evaluate({"blk.0.attn_q.weight": "q9_9"})
    with pytest.raises(GGQuantError, match="backend"):
        Evaluator(d, TEXT, ctx=CTX, backend="onnx", progress=False)
    other = tmp_path / "other"
    hf_models.build("llama", other, hidden=64, layers=2, vocab=320)
    wrong = ggquant.convert(other, tmp_path / "other.gguf", "Q8_0", quiet=True).path
    with pytest.raises(GGQuantError, match="shape"):
        ev.evaluate(wrong)
    qwen = tmp_path / "qwen"
    hf_models.build("qwen2", qwen, hidden=64, layers=1, vocab=320)
    with pytest.raises(GGQuantError, match="architecture"):
        ev.evaluate(ggquant.convert(qwen, tmp_path / "qwen.gguf", "Q8_0", quiet=True).path)


def test_unmappable_architecture_and_missing_extra(tmp_path, monkeypatch):
    import transformers as tr

    gpt2 = tr.GPT2LMHeadModel(tr.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=100))
    with pytest.raises(GGQuantError, match="not supported"):
        Evaluator(gpt2, np.arange(64) % 100, ctx=CTX, progress=False)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(GGQuantError, match="pip install"):
        Evaluator(tmp_path, TEXT, ctx=CTX, progress=False)


def test_gguf_baseline_for_the_torch_backend(tiny, tmp_path):
    d, _, ev = tiny
    f32 = ggquant.convert(d, tmp_path / "f32.gguf", "F32", quiet=True).path
    q2 = ggquant.convert(d, tmp_path / "q2.gguf", "Q2_K", quiet=True).path
    eg = Evaluator(f32, TEXT, ctx=CTX, n_chunks=6, progress=False)  # config rebuilt, llama.cpp's tokenizer
    assert np.array_equal(eg.tokens, ev.tokens)
    a, b = eg.evaluate(q2), ev.evaluate(q2)
    assert a.kld_mean == pytest.approx(b.kld_mean, rel=1e-4) and a.ppl_base == pytest.approx(b.ppl_base, rel=1e-5)
    gemma = tmp_path / "gemma"
    hf_models.build("gemma", gemma, hidden=64, layers=1, vocab=384)
    with pytest.raises(GGQuantError, match="cannot rebuild a 'gemma'"):
        Evaluator(ggquant.convert(gemma, tmp_path / "g.gguf", "F32", quiet=True).path, TEXT, ctx=CTX, progress=False)


def test_mlx_directory(tiny, tmp_path):
    pytest.importorskip("ml_dtypes")
    d, model, ev = tiny
    before = _state(model)
    out = tmp_path / "mlx"
    ggquant.convert_mlx(d, out, "mlx:int4", quiet=True)  # one type everywhere, as the fake below
    r = ev.evaluate(out)
    # the same int4 affine codes applied on the fly give the same model
    fake = ev.evaluate({n: "int4" for n, s in ev.tensors() if len(s) == 2})
    assert r.kld_mean > 0 and r.kld_mean == pytest.approx(fake.kld_mean, rel=1e-3)
    assert all(torch_equal(before[k], v) for k, v in _state(model).items())
