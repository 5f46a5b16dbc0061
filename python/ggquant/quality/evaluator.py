"""KLD / perplexity evaluation of a quantized model against its baseline, as ``llama-perplexity
--kl-divergence`` measures it (/work/shared/reference/quality.md §1)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GGQuantError
from ..imatrix import load_imatrix
from ..mlx import routes_to_mlx
from ..plan import ModelInfo, Plan, plan_quantization
from ..qtypes import GGMLType, resolve_type
from .llama_backend import LlamaModel
from .logprobs import BaseLogProbs, compare, encode_log_probs
from .stats import EvalResult, compute_stats
from .torch_backend import TorchModel
from ..progress import Progress
from .util import read_text

BACKENDS = ("torch", "llama.cpp")


class Evaluator:
    """Scores quantized variants of one baseline on one text, reusing the baseline's log-probabilities.

    The text is tokenized once (one BOS when the vocabulary adds it), cut into ``n_chunks`` chunks of ``ctx``
    tokens (the tail is dropped), each chunk is decoded independently with BOS in its first slot, and only the
    predictions at positions ``ctx//2 .. ctx-2`` are scored, exactly as ``llama-perplexity``. The baseline's
    log-probabilities at those positions are computed once and kept in memory in llama.cpp's
    ``--kl-divergence-base`` encoding (uint16 over the top 16 nats plus a float32 scale and minimum per
    token: 2 bytes per vocabulary entry and scored token; see :mod:`ggquant.quality.logprobs`), so the
    statistics are the ones llama-perplexity computes from its base file.

    Args:
        baseline: a Hugging Face model directory, a loaded transformers model (torch backend), or a GGUF file
            (F32/F16/BF16 for a baseline; the llama.cpp backend takes only GGUF files).
        text: the evaluation text (a ``str``), a path to a text file (``pathlib.Path``), or token ids.
        ctx: tokens per chunk (llama-perplexity ``-c``).
        backend: ``"torch"`` (transformers; fake quantization in place) or ``"llama.cpp"`` (llama-cpp-python).
        n_chunks: evaluate at most this many chunks (llama-perplexity ``--chunks``); default all.
        device: torch device (default CUDA when torch sees a GPU, else CPU).
        progress: show progress with an ETA on stderr.
        tokenizer: torch backend: tokenizer directory or object when ``baseline`` is a loaded model.
        n_threads: llama.cpp backend: threads.

    Raises:
        GGQuantError: the text is shorter than two chunks, an unknown backend, a model that cannot be mapped,
            or a missing extra (the message says what to ``pip install``).

    Example:
        >>> ev = Evaluator("models/pycoder-23m", Path("calib.py"), ctx=512)   # doctest: +SKIP
        >>> print(ev.evaluate("Q4_K_M").format())                               # doctest: +SKIP
    """

    def __init__(self, baseline: Any, text: Any, *, ctx: int = 512, backend: str = "torch",
                 n_chunks: int | None = None, device: Any = None, progress: bool = True,
                 tokenizer: Any = None, n_threads: int | None = None) -> None:
        if ctx < 4:
            raise GGQuantError(f"ctx must be at least 4 tokens, got {ctx}")
        self.ctx, self.progress, self.backend = int(ctx), progress, backend
        self.baseline_path = os.fspath(baseline) if isinstance(baseline, (str, os.PathLike)) else None
        if backend == "torch":
            self._model: Any = TorchModel(baseline, device=device, tokenizer=tokenizer)
        elif backend in ("llama.cpp", "llama_cpp", "llamacpp"):
            self.backend = "llama.cpp"
            self._model = LlamaModel(baseline, n_ctx=self.ctx, n_threads=n_threads)
        else:
            raise GGQuantError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        if isinstance(text, (str, os.PathLike)):
            tokens = np.asarray(self._model.tokenize(read_text(text)), np.int64)
        else:
            tokens = np.asarray(text, np.int64).reshape(-1)
        if len(tokens) < 2 * self.ctx:
            raise GGQuantError(f"the text has {len(tokens)} tokens; at least 2*ctx = {2 * self.ctx} are needed "
                               f"(use a longer text or a smaller ctx)")
        if tokens.min() < 0 or tokens.max() >= self._model.n_vocab:
            raise GGQuantError(f"token ids must lie in [0, {self._model.n_vocab}), got {tokens.min()}..{tokens.max()}")
        total = len(tokens) // self.ctx
        self.n_chunks = min(total, n_chunks) if n_chunks is not None and n_chunks > 0 else total
        self.tokens = tokens[: self.n_chunks * self.ctx]
        self.first = self.ctx // 2
        self.n_scored = self.ctx - 1 - self.first
        nxt = self.tokens.reshape(self.n_chunks, self.ctx)[:, self.first + 1:]
        self.next_tokens = np.ascontiguousarray(nxt).reshape(-1)
        parts: list[BaseLogProbs] = []
        floor = 0.0
        for i, lg in enumerate(self._run("baseline")):
            parts.append(encode_log_probs(lg))
            s = slice(i * self.n_scored, (i + 1) * self.n_scored)
            floor += float(compare(parts[-1], lg, self.next_tokens[s])[2].sum(dtype=np.float64))
        #: mean KLD of the baseline against its own stored log-probabilities (the uint16 storage floor)
        self.kld_floor = floor / self.n_tokens
        self.base = BaseLogProbs(np.concatenate([p.q for p in parts]), np.concatenate([p.scale for p in parts]),
                                 np.concatenate([p.min_log_prob for p in parts]))

    @property
    def n_tokens(self) -> int:
        """Scored tokens per evaluation."""
        return self.n_chunks * self.n_scored

    def _run(self, what: str) -> Iterator[np.ndarray]:
        prog = Progress(self.n_chunks, not self.progress, desc=what, unit="chunk")
        done = False
        try:
            for i in range(self.n_chunks):
                prog.start(f"chunk {i + 1}/{self.n_chunks}")
                yield self._model.logits(self.tokens[i * self.ctx:(i + 1) * self.ctx], self.first)
                prog.update()
            done = True
        finally:
            prog.close(interrupted=not done)

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(GGUF name, NumPy shape) of every weight a mapping may name, in converter order (torch backend)."""
        if not hasattr(self._model, "tensors"):
            raise GGQuantError(f"the {self.backend} backend swaps whole files; it has no per-tensor view")
        return list(self._model.tensors())

    @property
    def model_info(self) -> ModelInfo:
        """The baseline's :class:`~ggquant.plan.ModelInfo`, for :func:`ggquant.plan.plan_quantization` (torch backend)."""
        info = getattr(self._model, "info", None)
        if info is None:
            raise GGQuantError(f"the {self.backend} backend has no model info; use backend='torch'")
        return info  # type: ignore[no-any-return]

    def baseline_logits(self) -> BaseLogProbs:
        """The stored baseline log-probabilities (``n_tokens`` rows)."""
        return self.base

    def types_for(self, quantized: Any, *, imatrix: Any = None) -> dict[str, Any]:
        """The type of each GGUF tensor a preset name, :class:`~ggquant.plan.Plan` or mapping stands for."""
        if isinstance(quantized, Plan):
            return {t.name: t.type for t in quantized.tensors}
        if isinstance(quantized, Mapping):
            out: dict[str, Any] = {}
            for k, v in quantized.items():
                out[str(k)] = v if isinstance(v, str) and routes_to_mlx(v) else resolve_type(v)
            return out
        if isinstance(quantized, (str, GGMLType)):
            plan = plan_quantization(self.tensors(), quantized, self.model_info, has_imatrix=imatrix is not None)
            return plan.types
        raise GGQuantError(f"cannot evaluate {type(quantized).__name__}: pass a GGUF path, an MLX directory, a preset "
                           f"name, a Plan or a mapping GGUF tensor name -> type")

    def _apply(self, quantized: Any, imatrix: Any) -> tuple[AbstractContextManager[Any], str]:
        if isinstance(quantized, (str, os.PathLike)) and not isinstance(quantized, GGMLType):
            p = Path(quantized)
            if p.is_dir():
                if not hasattr(self._model, "with_mlx"):
                    raise GGQuantError(f"{p}: the {self.backend} backend cannot evaluate MLX directories")
                return self._model.with_mlx(p), p.name
            if p.suffix == ".gguf" or p.is_file():
                return self._model.with_gguf(p), p.name
        if not hasattr(self._model, "with_types"):
            raise GGQuantError(f"the {self.backend} backend evaluates GGUF files; presets, plans and type "
                               f"mappings need backend='torch'")
        imx = load_imatrix(imatrix) if isinstance(imatrix, (str, os.PathLike)) else imatrix
        types = self.types_for(quantized, imatrix=imx)
        if isinstance(quantized, Plan):
            label = quantized.preset
        elif isinstance(quantized, Mapping):
            label = ", ".join(f"{k}={getattr(v, 'name', v)}" for k, v in list(types.items())[:2])
            label = label + (f" (+{len(types) - 2} more)" if len(types) > 2 else "") if types else "baseline"
        else:
            label = str(quantized.name if isinstance(quantized, GGMLType) else quantized)
        return self._model.with_types(types, imx), label

    def evaluate(self, quantized: Any, *, imatrix: Any = None, label: str | None = None) -> EvalResult:
        """Score one quantized variant against the stored baseline.

        Args:
            quantized: a GGUF file (split sets: any shard), an MLX-quantized directory, a preset or type name
                (``"Q4_K_M"``, ``"q8_0"``), a :class:`~ggquant.plan.Plan`, or a mapping GGUF tensor name ->
                ggml type (or MLX mode); tensors a mapping leaves out keep the baseline's weights.
            imatrix: importance matrix for fake quantization: a file or the dict :func:`ggquant.load_imatrix`
                returns (GGUF tensor names).
            label: name shown in the result (default: derived from ``quantized``).

        Returns:
            An :class:`~ggquant.quality.EvalResult`.

        Raises:
            GGQuantError: the quantized model does not match the baseline (architecture, vocabulary, tensor
                shapes), an unknown type or tensor name, or a row length the type cannot quantize.
        """
        return self._evaluate(quantized, imatrix, label)[0]

    def audit(self, quantized: Any, *, imatrix: Any = None, label: str | None = None) -> tuple[EvalResult, dict[str, dict[str, float]]]:
        """:meth:`evaluate`, plus per swapped tensor its MSE, SQNR (dB) and max abs error against the baseline's
        weights (torch backend; empty for llama.cpp, where :func:`ggquant.quality.diff_gguf` compares files)."""
        return self._evaluate(quantized, imatrix, label)

    def _evaluate(self, quantized: Any, imatrix: Any, label: str | None) -> tuple[EvalResult, dict[str, dict[str, float]]]:
        swap, name = self._apply(quantized, imatrix)
        vals: list[tuple[np.ndarray, ...]] = []
        with swap as saved:
            errors = self._model.weight_errors(saved) if saved is not None else {}
            for i, lg in enumerate(self._run(f"evaluate {label or name}")):
                if lg.shape[-1] != self.base.q.shape[1]:
                    raise GGQuantError(f"{name}: vocabulary of {lg.shape[-1]} tokens, the baseline has {self.base.q.shape[1]}")
                s = slice(i * self.n_scored, (i + 1) * self.n_scored)
                vals.append(compare(self.base.rows(s.start, s.stop), lg, self.next_tokens[s]))
        nb, nq, kl, st = (np.concatenate(v) for v in zip(*vals))
        r = compute_stats(nb, nq, kl, st, ctx=self.ctx, n_chunks=self.n_chunks, label=label or name,
                          backend=self.backend)
        return r, errors


def evaluate(baseline: Any, quantized: Any, text: Any, *, imatrix: Any = None, **kw: Any) -> EvalResult:
    """One-shot: ``Evaluator(baseline, text, **kw).evaluate(quantized, imatrix=imatrix)``.

    Args:
        baseline / text / kw: as :class:`Evaluator` (``ctx``, ``backend``, ``n_chunks``, ``device``, ``progress``).
        quantized / imatrix: as :meth:`Evaluator.evaluate`.

    Returns:
        An :class:`~ggquant.quality.EvalResult`.

    Example:
        >>> r = ggquant.evaluate("models/pycoder-23m", "Q4_K_M", Path("calib.py"))   # doctest: +SKIP
        >>> r.kld_mean, r.top1                                                      # doctest: +SKIP
    """
    return Evaluator(baseline, text, **kw).evaluate(quantized, imatrix=imatrix)


__all__ = ["Evaluator", "evaluate", "BACKENDS"]
