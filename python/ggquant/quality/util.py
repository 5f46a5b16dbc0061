"""Small shared pieces of the quality package: progress lines and reading the evaluation text."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path


class Progress:
    """One stderr line per chunk with the rate and an ETA (carriage-return updated)."""

    def __init__(self, what: str, total: int, enabled: bool) -> None:
        self.what, self.total, self.enabled = what, total, enabled
        self.t0 = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        dt = time.perf_counter() - self.t0
        eta = dt / done * (self.total - done) if done else 0.0
        sys.stderr.write(f"\r[ggquant] {self.what}: chunk {done}/{self.total}, {dt / max(done, 1):.2f} s/chunk, "
                         f"ETA {eta:.0f} s ")
        sys.stderr.flush()

    def close(self, interrupted: bool = False) -> None:
        if self.enabled:
            sys.stderr.write(" interrupted\n" if interrupted else "\n")
            sys.stderr.flush()


def read_text(text: str | os.PathLike[str]) -> str:
    """The evaluation text: a string as is; a path is read as ``llama-perplexity -f`` does (one trailing
    newline dropped)."""
    if isinstance(text, os.PathLike):
        s = Path(text).read_text(encoding="utf-8", errors="replace")
        return s[:-1] if s.endswith("\n") else s
    return text


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 16 MiB pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(16 << 20), b""):
            h.update(b)
    return h.hexdigest()


__all__ = ["Progress", "read_text", "sha256_file"]
