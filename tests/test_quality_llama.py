"""The llama.cpp backend (llama-cpp-python) agrees with the torch backend on the same GGUF files."""

from __future__ import annotations

import numpy as np
import pytest

import ggquant
from ggquant import GGQuantError

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llama_cpp")

import hf_models  # noqa: E402
import llama_oracle  # noqa: E402

from ggquant.quality import Evaluator  # noqa: E402

pytestmark = pytest.mark.skipif(llama_oracle.available() is not None, reason=str(llama_oracle.available()))

CTX = 64
TEXT = " ".join(hf_models.CORPUS * 3)


def test_backends_agree(tiny_llama):
    d, f = tiny_llama
    et = Evaluator(d, TEXT, ctx=CTX, n_chunks=5, progress=False)
    el = Evaluator(f["F32"], TEXT, ctx=CTX, n_chunks=5, progress=False, backend="llama.cpp")
    assert np.array_equal(et.tokens, el.tokens)  # same tokenizer, same BOS handling
    assert el.evaluate(f["F32"]).kld_mean == pytest.approx(0, abs=1e-7)
    for p in ("Q4_0", "Q2_K"):
        a, b = et.evaluate(f[p]), el.evaluate(f[p])
        assert b.backend == "llama.cpp" and a.n_tokens == b.n_tokens
        assert b.kld_mean == pytest.approx(a.kld_mean, rel=0.10), p
        assert b.ppl == pytest.approx(a.ppl, rel=0.01) and b.ppl_base == pytest.approx(a.ppl_base, rel=0.01), p
        assert b.top1 == pytest.approx(a.top1, abs=0.05)
    assert et.evaluate(f["Q2_K"]).kld_mean > et.evaluate(f["Q4_0"]).kld_mean


def test_llama_backend_bad_input(tiny_llama, tmp_path):
    d, f = tiny_llama
    el = Evaluator(f["F32"], TEXT, ctx=CTX, n_chunks=2, progress=False, backend="llama.cpp")
    with pytest.raises(GGQuantError, match="backend='torch'"):
        el.evaluate("Q4_K_M")
    other = tmp_path / "other"
    hf_models.build("llama", other, hidden=64, layers=1, vocab=320)
    with pytest.raises(GGQuantError, match="does not match"):
        el.evaluate(ggquant.convert(other, tmp_path / "o.gguf", "Q8_0", quiet=True).path)
    with pytest.raises(GGQuantError, match="needs a GGUF file"):
        Evaluator(d, TEXT, ctx=CTX, backend="llama.cpp", progress=False)
