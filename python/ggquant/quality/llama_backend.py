"""The ``llama.cpp`` backend: GGUF files evaluated in the real runtime through llama-cpp-python."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import GGQuantError

_LOG_CB: list[Any] = []  # keeps the silencing callback alive


def import_llama_cpp() -> Any:
    """llama_cpp with its log silenced, or a clear error naming the package to install."""
    try:
        import llama_cpp
    except ImportError:
        raise GGQuantError("the llama.cpp backend needs llama-cpp-python: pip install llama-cpp-python") from None
    if not _LOG_CB:
        cb = llama_cpp.llama_log_callback(lambda level, text, user: None)
        llama_cpp.llama_log_set(cb, None)
        _LOG_CB.append(cb)
    return llama_cpp


class LlamaModel:
    """One GGUF model loaded in llama.cpp with a context of ``n_ctx`` tokens and logits for every position.

    Args:
        path: the GGUF file (split sets: the first shard).
        n_ctx: context (= chunk) length.
        n_threads: decoding threads (default: llama.cpp's).
    """

    def __init__(self, path: Any, *, n_ctx: int, n_threads: int | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
            raise GGQuantError(f"the llama.cpp backend needs a GGUF file, got {path!r}")
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.llm = self._open(path)
        self.n_vocab = int(self.llm.n_vocab())
        self.bos_id = int(self.llm.token_bos())
        a = self.llm.tokenize(b"a", add_bos=True, special=False)
        self.add_bos = len(a) > len(self.llm.tokenize(b"a", add_bos=False, special=False))
        self.arch = str(self.llm.metadata.get("general.architecture", ""))

    def _open(self, path: Any) -> Any:
        llama_cpp = import_llama_cpp()
        try:  # verbose=False would leak a /dev/null handle per model; the C log is silenced, Python's print caught
            with contextlib.redirect_stderr(io.StringIO()):
                return llama_cpp.Llama(os.fspath(path), n_ctx=self.n_ctx, n_batch=self.n_ctx, n_ubatch=self.n_ctx,
                                       logits_all=True, n_threads=self.n_threads, n_threads_batch=self.n_threads,
                                       verbose=True)
        except (ValueError, RuntimeError) as e:
            raise GGQuantError(f"{path}: llama.cpp cannot load this model: {e}") from e

    def tokenize(self, text: str) -> np.ndarray:
        """Token ids as ``common_tokenize(text, add_special=True, parse_special=False)``."""
        return np.asarray(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=False), np.int64)

    def logits(self, chunk: np.ndarray, first: int) -> np.ndarray:
        """float32 logits at positions ``first .. len(chunk) - 2`` of one independently decoded chunk."""
        ids = [int(t) for t in chunk]
        if self.add_bos:
            ids[0] = self.bos_id
        self.llm.reset()
        self.llm.eval(ids)
        return np.array(self.llm.scores[first:len(ids) - 1], dtype=np.float32)

    def close(self) -> None:
        self.llm.close()

    @contextmanager
    def with_gguf(self, path: Any) -> Iterator[None]:  # yields no swapped tensors: a second model is loaded
        """Within the block, logits come from the GGUF file ``path`` instead."""
        base = self.llm
        q = self._open(path)
        try:
            arch = str(q.metadata.get("general.architecture", ""))
            if arch != self.arch or int(q.n_vocab()) != self.n_vocab:
                raise GGQuantError(f"{path}: {arch} model with {q.n_vocab()} tokens does not match the baseline "
                                   f"({self.arch}, {self.n_vocab} tokens)")
            self.llm = q
            yield
        finally:
            self.llm = base
            q.close()


__all__ = ["LlamaModel", "import_llama_cpp"]
