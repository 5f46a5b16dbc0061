"""Writes seed corpora for the atheris harnesses that have no committed one (tests/fuzz/fuzz_python.py):
index JSON files for ``checkpoint`` and imatrix files (GGUF and legacy) for ``imatrix``.

Run: python tests/fuzz/make_corpus_python.py OUT_DIR  (creates OUT_DIR/checkpoint and OUT_DIR/imatrix)
"""

from __future__ import annotations

import json
import pathlib
import struct
import sys

import numpy as np

from ggquant.gguf import GGUFValueType as VT
from ggquant.gguf import GGUFWriter


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    ck, im = out / "checkpoint", out / "imatrix"
    ck.mkdir(parents=True, exist_ok=True)
    im.mkdir(parents=True, exist_ok=True)
    s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    good = {"metadata": {"total_size": 19}, "weight_map": {"a": s1, "b": s1, "c": s2}}
    (ck / "good.json").write_text(json.dumps(good))
    (ck / "one_shard.json").write_text(json.dumps({"weight_map": {"c": s2}}))
    (ck / "nested.json").write_text(json.dumps({"metadata": {"x": [1, {"y": None}]}, "weight_map": {"a": s1, "b": s1, "c": s2}}))
    (im / "legacy.dat").write_bytes(struct.pack("<ii1sii4f", 1, 1, b"w", 2, 4, 2.0, 4.0, 6.0, 8.0)
                                    + struct.pack("<ii", 10, 4) + b"data")
    with GGUFWriter(im / "imatrix.gguf") as w:
        w.add_kv("general.type", "imatrix")
        w.add_kv("imatrix.chunk_count", 10, VT.UINT32)
        w.add_kv("imatrix.chunk_size", 512, VT.UINT32)
        w.add_kv("imatrix.datasets", ["wiki.txt"], VT.ARRAY, VT.STRING)
        w.add_tensor_info("blk.0.w.in_sum2", (2, 32), "f32")
        w.add_tensor_info("blk.0.w.counts", (2, 1), "f32")
        w.write_tensor("blk.0.w.in_sum2", np.ones((2, 32), np.float32))
        w.write_tensor("blk.0.w.counts", np.array([[3.0], [0.0]], np.float32))


if __name__ == "__main__":
    main()
