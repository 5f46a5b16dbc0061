"""ggquant.quality statistics: hand-computed examples of llama-perplexity's formulas (no torch needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ggquant import GGQuantError
from ggquant.quality import compute_stats
from ggquant.quality.logprobs import compare, encode_log_probs
from ggquant.quality.stats import covariance, mean_se, median, percentile


def test_mean_se_and_covariance_follow_llama_cpp():
    assert mean_se(6.0, 14.0, 3) == (2.0, 0.0)  # N <= 10: no standard error
    # 0 x10, 1.1 once: mean 0.1, variance 0.11 - 0.01 = 0.1, SE sqrt(0.1/10) = 0.1
    m, s = mean_se(1.1, 1.21, 11)
    assert m == pytest.approx(0.1) and s == pytest.approx(0.1)
    assert covariance(1.0, 2.0, 3.0, 9) == 0.0  # N < 10
    assert covariance(11.0, 22.0, 22.0 + 10.0, 11) == pytest.approx((32 / 11 - 2) / 10)


def test_percentile_and_median_interpolate_like_llama_cpp():
    v = np.array([0.0, 1.0, 2.0, 10.0], np.float32)
    assert percentile(v, 0.99) == pytest.approx(0.03 * 2 + 0.97 * 10, rel=1e-6)  # x = 2.97
    assert percentile(v, 0.0) == 0.0 and percentile(v, 1.0) == 10.0
    assert median(v) == 1.5 and median(v[:3]) == 1.0


def test_compute_stats_hand_computed():
    n = 11
    nll_b = np.ones(n)
    nll_q = np.array([1.0] * 10 + [2.1])
    kld = np.array([0.0] * 10 + [1.1])
    same = np.array([True] * 10 + [False])
    r = compute_stats(nll_b, nll_q, kld, same, ctx=8, n_chunks=3)
    assert (r.n_tokens, r.ctx, r.n_chunks) == (11, 8, 3)
    assert r.ppl_base == pytest.approx(math.e) and r.ppl_base_se == 0.0
    assert r.ppl == pytest.approx(math.exp(1.1), rel=1e-6)
    assert r.ppl_se == pytest.approx(math.exp(1.1) * 0.1, rel=1e-4)
    assert r.ln_ppl_ratio == pytest.approx(0.1, rel=1e-5) and r.ln_ppl_ratio_se == pytest.approx(0.1, rel=1e-4)
    assert r.kld_mean == pytest.approx(0.1, rel=1e-6) and r.kld_mean_se == pytest.approx(0.1, rel=1e-5)
    assert r.kld_max == pytest.approx(1.1) and r.kld_median == 0.0
    assert r.kld_p99 == pytest.approx(0.9 * 1.1, rel=1e-6)  # x = 0.99 * 10 = 9.9
    assert r.top1 == pytest.approx(10 / 11) and r.top1_se == pytest.approx(1 / 11)
    d = math.exp(-2.1) - math.exp(-1.0)
    assert r.rms_dp == pytest.approx(abs(d) / math.sqrt(11), rel=1e-5)
    assert r.dp_max_abs == pytest.approx(abs(d), rel=1e-5)
    assert set(r.to_dict()) >= {"kld_mean", "ppl", "top1", "rms_dp_se"}
    assert "KLD" in r.format()


def test_two_token_example_through_the_base_encoding():
    # base p = (1/2, 1/2) (scale 0: every code 0), quantized q = (3/4, 1/4); next token 0 both times
    base = encode_log_probs(np.zeros((2, 2), np.float32))
    assert base.q.tolist() == [[0, 0], [0, 0]] and base.scale.tolist() == [0.0, 0.0]
    q_logits = np.array([[math.log(3.0), 0.0]] * 2, np.float32)
    nll_b, nll_q, kld, same = compare(base, q_logits, np.array([0, 0]))
    want_kld = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert kld == pytest.approx([want_kld] * 2, rel=1e-6)
    assert nll_b == pytest.approx([math.log(2)] * 2) and nll_q == pytest.approx([-math.log(0.75)] * 2, rel=1e-6)
    assert same.tolist() == [True, True]
    r = compute_stats(nll_b, nll_q, kld, same)
    assert r.ppl == pytest.approx(4 / 3, rel=1e-6) and r.ppl_base == pytest.approx(2.0, rel=1e-6)
    assert r.rms_dp == pytest.approx(0.25, rel=1e-6)


def test_compare_is_kl_of_base_against_quantized(rng):
    base_logits = rng.normal(0, 3, (50, 40)).astype(np.float32)
    q_logits = (base_logits + rng.normal(0, 0.3, base_logits.shape)).astype(np.float32)
    toks = rng.integers(0, 40, 50)
    nll_b, nll_q, kld, same = compare(encode_log_probs(base_logits), q_logits, toks)

    def log_softmax(x):
        x = x.astype(np.float64)
        return x - x.max(1, keepdims=True) - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))

    lp, lq = log_softmax(base_logits), log_softmax(q_logits)
    exact = (np.exp(lp) * (lp - lq)).sum(1)
    reverse = (np.exp(lq) * (lq - lp)).sum(1)
    assert np.allclose(kld, exact, atol=2e-4)  # uint16 storage step is 16/65535 nats
    assert not np.allclose(kld, reverse, atol=2e-4)
    assert np.allclose(nll_b, -lp[np.arange(50), toks], atol=2e-4)
    assert np.allclose(nll_q, -lq[np.arange(50), toks], atol=1e-5)
    assert (same == (base_logits.argmax(1) == q_logits.argmax(1))).all()
    # against itself only the storage rounding is left: at most half a step (8/65535 nats) per token, mean ~0
    _, _, k0, s0 = compare(encode_log_probs(base_logits), base_logits, toks)
    assert np.abs(k0).max() < 8 / 65535 and abs(k0.mean()) < 2e-5 and s0.all()


def test_bad_input():
    with pytest.raises(GGQuantError, match="no scored tokens"):
        compute_stats([], [], [], [])
    with pytest.raises(GGQuantError, match="differ in length"):
        compute_stats([1.0], [1.0, 2.0], [0.0], [True])
