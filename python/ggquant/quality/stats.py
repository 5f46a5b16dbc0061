"""Model-level quality statistics from per-token values, exactly as ``llama-perplexity --kl-divergence`` prints
them (tools/perplexity/perplexity.cpp: ``kl_divergence()``; see /work/shared/reference/quality.md §1.5-1.6).

Per scored token the inputs are: the negative log-likelihood of the actual next token under the base and the
quantized model, the KL divergence (base || quantized), Δp = P_q(token) - P_base(token), and whether both
models' most likely token is the same. Sums are accumulated in float64 from float32 per-token values with the
same float32 products llama.cpp forms, and percentiles are interpolated in float32 as its ``percentile`` lambda.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import GGQuantError

#: KLD percentiles llama-perplexity prints (fraction -> label)
KLD_PERCENTILES: tuple[float, ...] = (0.999, 0.99, 0.95, 0.90, 0.10, 0.05, 0.01, 0.001)
#: Δp percentiles llama-perplexity prints
DP_PERCENTILES: tuple[float, ...] = (0.999, 0.99, 0.95, 0.90, 0.75, 0.25, 0.10, 0.05, 0.01, 0.001)


@dataclass
class EvalResult:
    """What a quantization costs, measured on ``n_tokens`` scored tokens (llama-perplexity's statistics).

    Attributes:
        n_tokens: scored tokens (``n_chunks * (ctx - 1 - ctx // 2)``).
        n_chunks / ctx: chunks of ``ctx`` tokens evaluated.
        ppl_base / ppl_base_se: perplexity of the baseline (from its stored log-probabilities) and one SE.
        ppl / ppl_se: perplexity of the quantized model.
        ln_ppl_ratio / ln_ppl_ratio_se: mean ln(PPL_q / PPL_base), with the covariance-corrected SE.
        kld_mean / kld_mean_se: mean KL divergence (base || quantized) per token, nats.
        kld_median / kld_p99 / kld_max: its median, 99th percentile and maximum.
        top1 / top1_se: fraction of tokens where both models' most likely token agrees ("same top p").
        rms_dp / rms_dp_se: root mean square of Δp = P_q(token) - P_base(token) (a fraction, not %).
        ppl_ratio / ppl_ratio_se, ppl_diff / ppl_diff_se, ppl_cor: the other perplexity lines.
        dp_mean / dp_mean_se / dp_max_abs: mean Δp and max |Δp|.
        kld_percentiles / dp_percentiles: all printed percentiles, keyed ``"99.9"``, ``"median"``, ``"min"`` ...
        label / backend: what was evaluated and how (informative only).
    """

    n_tokens: int
    n_chunks: int
    ctx: int
    ppl_base: float
    ppl_base_se: float
    ppl: float
    ppl_se: float
    ln_ppl_ratio: float
    ln_ppl_ratio_se: float
    kld_mean: float
    kld_mean_se: float
    kld_median: float
    kld_p99: float
    kld_max: float
    top1: float
    top1_se: float
    rms_dp: float
    rms_dp_se: float
    ppl_ratio: float = 0.0
    ppl_ratio_se: float = 0.0
    ppl_diff: float = 0.0
    ppl_diff_se: float = 0.0
    ppl_cor: float = 0.0
    dp_mean: float = 0.0
    dp_mean_se: float = 0.0
    dp_max_abs: float = 0.0
    kld_percentiles: dict[str, float] = field(default_factory=dict)
    dp_percentiles: dict[str, float] = field(default_factory=dict)
    label: str = ""
    backend: str = ""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-serialisable dict."""
        return asdict(self)

    def format(self) -> str:
        """A short table of the main statistics, in llama-perplexity's units (Δp and top-1 in %)."""
        head = f"{self.label} " if self.label else ""
        rows = [
            f"{head}({self.backend or 'torch'}; {self.n_chunks} chunks x ctx {self.ctx}, {self.n_tokens} scored tokens)",
            f"  PPL(base)            {self.ppl_base:12.6f} ± {self.ppl_base_se:.6f}",
            f"  PPL(Q)               {self.ppl:12.6f} ± {self.ppl_se:.6f}",
            f"  ln(PPL(Q)/PPL(base)) {self.ln_ppl_ratio:12.6f} ± {self.ln_ppl_ratio_se:.6f}",
            f"  mean KLD             {self.kld_mean:12.6f} ± {self.kld_mean_se:.6f}",
            f"  median / p99 / max   {self.kld_median:.6f} / {self.kld_p99:.6f} / {self.kld_max:.6f}",
            f"  same top p           {100 * self.top1:11.3f}% ± {100 * self.top1_se:.3f}%",
            f"  RMS Δp               {100 * self.rms_dp:11.3f}% ± {100 * self.rms_dp_se:.3f}%",
        ]
        return "\n".join(rows)


def mean_se(s1: float, s2: float, n: int) -> tuple[float, float]:
    """llama.cpp's ``mean_and_uncertainty``: (mean, standard error of the mean) from Σx, Σx², N.

    The SE is ``sqrt((Σx²/N - mean²)/(N-1))`` when that variance is positive and N > 10, else 0.

    Example:
        >>> mean_se(6.0, 14.0, 3)   # 1, 2, 3: N <= 10, so no SE
        (2.0, 0.0)
    """
    if n < 1:
        return 0.0, 0.0
    f = s1 / n
    v = s2 / n - f * f
    return f, (math.sqrt(v / (n - 1)) if v > 0 and n > 10 else 0.0)


def covariance(sa: float, sb: float, sab: float, n: int) -> float:
    """llama.cpp's ``covariance``: ``(Σab/N - (Σa/N)(Σb/N)) / (N-1)``, or 0 when N < 10."""
    if n < 10:
        return 0.0
    return (sab / n - (sa / n) * (sb / n)) / (n - 1)


def percentile(sorted_values: np.ndarray, fraction: float) -> float:
    """llama.cpp's ``percentile``: linear interpolation at ``fraction*(N-1)`` in float32 (values sorted ascending)."""
    v = sorted_values
    if fraction <= 0:
        return float(v[0])
    if fraction >= 1:
        return float(v[-1])
    p = np.float32(fraction) * np.float32(len(v) - 1)
    ip = int(p)
    p = np.float32(p - np.float32(ip))
    return float((np.float32(1) - p) * v[ip] + p * v[min(ip + 1, len(v) - 1)])


def median(sorted_values: np.ndarray) -> float:
    """The middle element, or the float32 mean of the two middle ones for an even count (as llama.cpp)."""
    v, n = sorted_values, len(sorted_values)
    if n % 2 == 0:
        return float(np.float32(0.5) * (v[n // 2] + v[n // 2 - 1]))
    return float(v[n // 2])


def _label(f: float) -> str:
    return f"{100 * f:.1f}"


def compute_stats(
    nll_base: Any,
    nll_q: Any,
    kld: Any,
    same_top: Any,
    *,
    ctx: int = 0,
    n_chunks: int = 0,
    dp: Any = None,
    label: str = "",
    backend: str = "",
) -> EvalResult:
    """All of llama-perplexity's KL-divergence statistics from per-token values.

    Args:
        nll_base: per scored token, -log P_base(actual next token) (nats).
        nll_q: the same under the quantized model.
        kld: per token KL(base || quantized).
        same_top: per token, whether both models' argmax agree (bool).
        ctx / n_chunks: recorded in the result.
        dp: Δp per token; default ``exp(-nll_q) - exp(-nll_base)`` in float32, as llama.cpp.
        label / backend: recorded in the result.

    Returns:
        An :class:`EvalResult`.

    Raises:
        GGQuantError: the arrays differ in length or are empty.

    Example:
        >>> import numpy as np
        >>> r = compute_stats(np.zeros(2), np.zeros(2), np.zeros(2), np.ones(2, bool))
        >>> r.ppl, r.kld_mean, r.top1
        (1.0, 0.0, 1.0)
    """
    nb = np.asarray(nll_base, np.float32).reshape(-1)
    nq = np.asarray(nll_q, np.float32).reshape(-1)
    kl = np.asarray(kld, np.float32).reshape(-1)
    st = np.asarray(same_top, bool).reshape(-1)
    d = (np.exp(-nq) - np.exp(-nb)).astype(np.float32) if dp is None else np.asarray(dp, np.float32).reshape(-1)
    n = len(nb)
    if n == 0:
        raise GGQuantError("no scored tokens: cannot compute statistics")
    if not len(nq) == len(kl) == len(st) == len(d) == n:
        raise GGQuantError(f"per-token arrays differ in length: nll_base {n}, nll_q {len(nq)}, kld {len(kl)}, "
                           f"same_top {len(st)}, dp {len(d)}")
    f64 = np.float64
    mu_q, s_q = mean_se(float(nq.sum(dtype=f64)), float((nq * nq).sum(dtype=f64)), n)  # float32 squares, as llama.cpp
    mu_b, s_b = mean_se(float(nb.sum(dtype=f64)), float((nb * nb).sum(dtype=f64)), n)
    cov = covariance(float(nq.sum(dtype=f64)), float(nb.sum(dtype=f64)), float((nq * nb).sum(dtype=f64)), n)
    ppl, ppl_b = math.exp(mu_q), math.exp(mu_b)
    ppl_se, ppl_b_se = ppl * s_q, ppl_b * s_b
    r = mu_q - mu_b
    r_se = math.sqrt(max(s_q * s_q + s_b * s_b - 2.0 * cov, 0.0))
    cor = cov / (s_q * s_b) if s_q > 0 and s_b > 0 else 0.0
    diff_se = math.sqrt(max(ppl_se * ppl_se + ppl_b_se * ppl_b_se - 2.0 * ppl * ppl_b * cov, 0.0))

    kd = kl.astype(f64)
    kmean, kse = mean_se(float(kd.sum()), float((kd * kd).sum()), n)
    ks = np.sort(kl)
    kp = {_label(f): percentile(ks, f) for f in KLD_PERCENTILES}
    kp.update(max=float(ks[-1]), median=median(ks), min=float(ks[0]))

    d2 = (d * d).astype(f64)  # float32 product, then double (perplexity.cpp: p_diff2)
    dmean, dse = mean_se(float(d.sum(dtype=f64)), float(d2.sum()), n)
    m2, s2 = mean_se(float(d2.sum()), float((d2 * d2).sum()), n)
    rms = math.sqrt(m2)
    rms_se = 0.5 / rms * s2 if rms > 0 else 0.0
    dsorted = np.sort(d)
    dpp = {_label(f): percentile(dsorted, f) for f in DP_PERCENTILES}
    dpp.update(max=float(dsorted[-1]), median=median(dsorted), min=float(dsorted[0]))

    top = float(st.sum()) / n
    top_se = math.sqrt(top * (1.0 - top) / (n - 1)) if n > 1 else 0.0
    return EvalResult(
        n_tokens=n, n_chunks=n_chunks, ctx=ctx, ppl_base=ppl_b, ppl_base_se=ppl_b_se, ppl=ppl, ppl_se=ppl_se,
        ln_ppl_ratio=r, ln_ppl_ratio_se=r_se, kld_mean=kmean, kld_mean_se=kse, kld_median=kp["median"],
        kld_p99=kp["99.0"], kld_max=kp["max"], top1=top, top1_se=top_se, rms_dp=rms, rms_dp_se=rms_se,
        ppl_ratio=math.exp(r), ppl_ratio_se=math.exp(r) * r_se, ppl_diff=ppl - ppl_b, ppl_diff_se=diff_se,
        ppl_cor=cor, dp_mean=dmean, dp_mean_se=dse, dp_max_abs=float(np.abs(d).max()), kld_percentiles=kp,
        dp_percentiles=dpp, label=label, backend=backend)


__all__ = ["EvalResult", "compute_stats", "mean_se", "covariance", "percentile", "median", "KLD_PERCENTILES",
           "DP_PERCENTILES"]
