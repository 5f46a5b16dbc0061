"""Writes the GGUF fuzz seed corpus (small valid files of several shapes) to tests/fuzz/corpus_gguf/."""

from __future__ import annotations

import pathlib

import numpy as np

import ggquant
from ggquant.gguf import GGUFValueType as VT
from ggquant.gguf import GGUFWriter

OUT = pathlib.Path(__file__).parent / "corpus_gguf"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    with GGUFWriter(OUT / "meta_only.gguf") as w:
        w.add_kv("general.architecture", "llama")
        w.add_kv("a.u32", 7, VT.UINT32)
        w.add_kv("a.strs", ["x", "yz"], VT.ARRAY, VT.STRING)
        w.add_kv("a.f32s", np.array([1.0, 2.0], np.float32))
        w.add_kv("a.b", True)
    with GGUFWriter(OUT / "tensors.gguf") as w:
        w.add_kv("general.architecture", "llama")
        for t in ["f32", "f16", "q4_0", "q8_0"]:
            w.add_tensor_info(f"w.{t}", x.shape, t)
        for t in ["f32", "f16", "q4_0", "q8_0"]:
            w.write_tensor(f"w.{t}", ggquant.quantize(x, t))
    with GGUFWriter(OUT / "align64.gguf", alignment=64) as w:
        w.add_tensor_info("a", (3,), "i8")
        w.add_tensor_info("b", (5,), "i8")
        w.write_tensor("a", np.arange(3, dtype=np.int8))
        w.write_tensor("b", np.arange(5, dtype=np.int8))
    with GGUFWriter(OUT / "empty.gguf"):
        pass


if __name__ == "__main__":
    main()
