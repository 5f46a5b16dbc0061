"""GGUF files in tests: their tensors as bytes, byte-for-byte comparison of two files, model directory copies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ggquant import GGMLType


def gguf_tensors(path: Path | str) -> dict[str, tuple[GGMLType, np.ndarray]]:
    """name -> (type, raw bytes) of each tensor of a GGUF file, read by the gguf package."""
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(str(path))
    return {t.name: (GGMLType(int(t.tensor_type)), np.asarray(t.data).view(np.uint8).reshape(-1).copy()) for t in r.tensors}


def assert_same_tensors(ours: Path | str, ref: Path | str, what: str = "") -> dict[str, tuple[GGMLType, np.ndarray]]:
    """Assert two GGUF files hold the same tensors: names, types and bytes. Returns ours, read."""
    a, b = gguf_tensors(ours), gguf_tensors(ref)
    assert set(a) == set(b), f"{what}: tensor names differ"
    for name in b:
        assert a[name][0] == b[name][0], f"{what} {name}: ggquant {a[name][0].name}, reference {b[name][0].name}"
        assert np.array_equal(a[name][1], b[name][1]), f"{what} {name} ({b[name][0].name}): bytes differ"
    return a


def copy_model_dir(src: Path, dst: Path, keep: Callable[[Path], bool] = lambda f: True) -> Path:
    """dst (created) with a copy of each file of src that keep accepts."""
    dst.mkdir(exist_ok=True)
    for f in src.iterdir():
        if keep(f):
            (dst / f.name).write_bytes(f.read_bytes())
    return dst
