"""The baseline's stored log-probabilities and the per-token comparison with a quantized model's logits, as
``llama-perplexity`` does it (perplexity.cpp: ``log_softmax(..., uint16_t*)`` and
``log_softmax(..., kl_divergence_result&)``; /work/shared/reference/quality.md §1.4-1.5).

Each scored position of the baseline is kept as llama.cpp's ``--kl-divergence-base`` record: the logits within
16 nats of the maximum mapped linearly onto uint16, plus a float32 scale and minimum log-probability. That is
2 bytes per vocabulary entry and token; the rounding step is 16/65535 nats (2.4e-4), and every probability
below e^-16 is dropped from the KL sum, exactly as in llama.cpp, so both tools compute the same statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class BaseLogProbs:
    """Encoded baseline log-probabilities of ``n`` scored positions.

    Attributes:
        q: uint16 ``(n, n_vocab)``: ``log p_i = scale * q_i + min_log_prob``.
        scale / min_log_prob: float32 ``(n,)``.
    """

    q: np.ndarray
    scale: np.ndarray
    min_log_prob: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.q.nbytes + self.scale.nbytes + self.min_log_prob.nbytes)

    def rows(self, start: int, stop: int) -> BaseLogProbs:
        return BaseLogProbs(self.q[start:stop], self.scale[start:stop], self.min_log_prob[start:stop])

    def log_probs(self) -> np.ndarray:
        """Decoded float32 log-probabilities ``(n, n_vocab)``."""
        return np.asarray(self.scale[:, None] * self.q.astype(np.float32) + self.min_log_prob[:, None], np.float32)


def _max_lse(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # float32 max, the exp sum in double, its log cast to float32
    m = logits.max(axis=1)
    s = np.exp(logits - m[:, None]).sum(axis=1, dtype=np.float64)
    return m, np.log(s).astype(np.float32)


def encode_log_probs(logits: np.ndarray) -> BaseLogProbs:
    """Encode float32 logits ``(n, n_vocab)`` as llama.cpp's uint16 base-logits records.

    Example:
        >>> import numpy as np
        >>> b = encode_log_probs(np.array([[0.0, 16.0, 20.0]], np.float32))
        >>> b.q.tolist(), bool(b.scale[0] == np.float32(16 / 65535))  # 0 is 20 nats down: clamped to m = 4
        ([[0, 49151, 65535]], True)
    """
    lg = np.ascontiguousarray(logits, dtype=np.float32)
    mx, lse = _max_lse(lg)
    mn = np.maximum(lg.min(axis=1), mx - np.float32(16))
    min_log_prob = (mn - mx - lse).astype(np.float32)
    scale = ((mx - mn) / np.float32(65535)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(scale > 0, np.float32(1) / scale, np.float32(0)).astype(np.float32)
    x = inv[:, None] * (lg - mn[:, None])
    q = np.where(lg > mn[:, None], np.rint(x), 0).astype(np.uint16)  # rint: ties to even, as the 1.5*2^23 trick
    return BaseLogProbs(q, scale, min_log_prob)


def compare(base: BaseLogProbs, logits: np.ndarray, next_tokens: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-token values of a quantized model against the stored baseline.

    Args:
        base: the baseline's records for these positions.
        logits: float32 ``(n, n_vocab)`` logits of the quantized model at the same positions.
        next_tokens: ``(n,)`` the actual next token of each position.

    Returns:
        ``(nll_base, nll_q, kld, same_top)``: float32, float32, float32, bool arrays of length n.
    """
    lg = np.ascontiguousarray(logits, dtype=np.float32)
    n = lg.shape[0]
    idx = np.arange(n)
    tok = np.asarray(next_tokens, np.int64)
    mx, lse = _max_lse(lg)
    top = mx + lse
    nll_q = (top - lg[idx, tok]).astype(np.float32)
    lpb = base.scale[:, None] * base.q.astype(np.float32) + base.min_log_prob[:, None]
    nll_b = -lpb[idx, tok]
    keep = lpb > np.float32(-16)
    pb = np.exp(np.where(keep, lpb, np.float32(-np.inf)))
    terms = pb * (lpb - lg + top[:, None])
    kld = np.where(keep, terms, np.float32(0)).sum(axis=1, dtype=np.float64).astype(np.float32)
    same = lg.argmax(axis=1) == base.q.argmax(axis=1)  # first index of the maximum on both sides
    return nll_b.astype(np.float32), nll_q, kld, same


__all__ = ["BaseLogProbs", "encode_log_probs", "compare"]
