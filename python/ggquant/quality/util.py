"""Small shared pieces of the quality package: reading the evaluation text, hashing files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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


__all__ = ["read_text", "sha256_file"]
