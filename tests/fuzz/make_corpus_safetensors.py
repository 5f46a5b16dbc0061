"""Writes the seed corpora for the safetensors and JSON fuzz harnesses (run from anywhere)."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import safetensors.numpy as st_np

HERE = os.path.dirname(os.path.abspath(__file__))


def image(header: str | bytes, data: bytes = b"") -> bytes:
    h = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


def main() -> None:
    st_dir = os.path.join(HERE, "corpus_safetensors")
    js_dir = os.path.join(HERE, "corpus_safetensors_json")
    os.makedirs(st_dir, exist_ok=True)
    os.makedirs(js_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    seeds = {
        "empty": st_np.save({}),
        "one_f32": st_np.save({"w": np.arange(4, dtype=np.float32)}),
        "mixed": st_np.save(
            {
                "a": rng.standard_normal((2, 3)).astype(np.float16),
                "b": np.arange(5, dtype=np.int64),
                "c": np.array([True, False]),
                "s": np.array(1.5),
                "z": np.zeros((0, 2), np.uint8),
            },
            metadata={"format": "pt"},
        ),
        "bf16_f8": image(
            '{"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},'
            '"e":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[4,6]},'
            '"m":{"dtype":"F8_E5M2","shape":[1],"data_offsets":[6,7]},'
            '"p":{"dtype":"F4","shape":[2],"data_offsets":[7,8]}}',
            bytes(range(8)),
        ),
        "padded": image('  {"__metadata__":{"k":"v\\u00e9"},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}    ', b"\x07"),
        "attack": image(json.dumps({f"w{i}": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]} for i in range(3)}), bytes(16)),
        "overflow": image('{"a":{"dtype":"F32","shape":[2,18446744073709551614],"data_offsets":[0,16]}}', bytes(16)),
        "dup": image('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
        "escapes": image('{"\\ud83d\\ude00\\n\\"":{"dtype":"I16","shape":[1],"data_offsets":[0,2],"extra":[1,2.5e3,null,true,{"q":"r"}]}}', b"\0\0"),
    }
    for name, data in seeds.items():
        with open(os.path.join(st_dir, name), "wb") as f:
            f.write(data)
        n = struct.unpack("<Q", data[:8])[0]
        with open(os.path.join(js_dir, name + ".json"), "wb") as f:
            f.write(data[8 : 8 + n])
    for i, text in enumerate(['[1,-2,3.5e-7,0,18446744073709551615]', '"\\u0041\\/\\b"', "null", '{"a":{"b":[[[]]]}}', " true "]):
        with open(os.path.join(js_dir, f"misc{i}.json"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
