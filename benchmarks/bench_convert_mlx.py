"""HF bf16 safetensors -> MLX-quantized directory: ``ggquant.convert_mlx`` vs ``mlx_lm.convert``, in one run.

Generates a Llama-shaped bf16 checkpoint (2048 wide, --layers layers, vocabulary 32000; about 1 GB at
8 layers), then runs each converter in its own process (peak RSS = that process's ru_maxrss) and
checks that both outputs hold the same tensors, byte for byte.

Run: python benchmarks/bench_convert_mlx.py [--quant int4] [--layers 8] [--workdir DIR] [--keep]
Needs: mlx[cpu], mlx-lm.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

RUN = """
import resource, sys, time
t0 = time.perf_counter()
{body}
print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def make_model(d: Path, layers: int, hidden: int = 2048, ffn: int = 5632, vocab: int = 32000) -> int:
    sys.path.insert(0, str(HERE.parent / "tests"))
    import ggquant
    import ml_dtypes
    from test_convert_mlx import _tokenizer

    d.mkdir(parents=True)
    heads, kv = 16, 4
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }  # fmt: skip
    (d / "config.json").write_text(json.dumps(cfg))
    _tokenizer(d)
    rng = np.random.default_rng(0)

    def bf16(*shape, scale=0.02):
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(ml_dtypes.bfloat16)

    total, shards, tensors = 0, [], {}
    tensors = {"model.embed_tokens.weight": bf16(vocab, hidden), "lm_head.weight": bf16(vocab, hidden),
               "model.norm.weight": bf16(hidden, scale=1.0)}  # fmt: skip
    for i in range(layers):
        p = f"model.layers.{i}."
        hd = hidden // heads
        tensors.update({
            p + "input_layernorm.weight": bf16(hidden, scale=1.0),
            p + "post_attention_layernorm.weight": bf16(hidden, scale=1.0),
            p + "self_attn.q_proj.weight": bf16(heads * hd, hidden), p + "self_attn.k_proj.weight": bf16(kv * hd, hidden),
            p + "self_attn.v_proj.weight": bf16(kv * hd, hidden), p + "self_attn.o_proj.weight": bf16(hidden, hidden),
            p + "mlp.gate_proj.weight": bf16(ffn, hidden), p + "mlp.up_proj.weight": bf16(ffn, hidden),
            p + "mlp.down_proj.weight": bf16(hidden, ffn)})  # fmt: skip
        if (i + 1) % 4 == 0 or i == layers - 1:
            shards.append(tensors)
            tensors = {}
    weight_map = {}
    for k, t in enumerate(shards):
        name = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        ggquant.save_file(t, d / name, {"format": "pt"})
        weight_map.update(dict.fromkeys(t, name))
        total += sum(v.nbytes for v in t.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(index))
    return total


def run(body: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", RUN.format(body=body)], check=True, capture_output=True, text=True)
    t, rss = out.stdout.strip().splitlines()[-1].split()
    return float(t), int(rss) * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quant", default="int4", help="int4, int8, mxfp8, mlx:nvfp4, mlx:mxfp4")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    import ggquant.mlx as gm

    mode, bits, gs = gm.resolve(args.quant)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_convert_mlx-"))
    try:
        src = work / "model"
        size = make_model(src, args.layers)
        print(f"model: {size / 2**20:.0f} MiB of bf16 weights, {args.layers} layers; quant {args.quant}\n")
        t_g, r_g = run(f"import ggquant; ggquant.convert_mlx({str(src)!r}, {str(work / 'ours')!r}, "
                       f"{args.quant!r}, quiet=True)")  # fmt: skip
        t_m, r_m = run(f"import mlx_lm; mlx_lm.convert({str(src)!r}, {str(work / 'ref')!r}, quantize=True, "
                       f"q_group_size={gs}, q_bits={bits}, q_mode={mode!r})")  # fmt: skip
        import mlx.core as mx

        def arrays(d: Path) -> dict:
            out = {}
            for f in sorted(d.glob("model*.safetensors")):
                out.update({k: np.array(v.view(mx.uint8)) for k, v in mx.load(str(f)).items()})
            return out

        a, b = arrays(work / "ours"), arrays(work / "ref")
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        print(f"{'route':28} {'wall':>8} {'peak RSS':>10}")
        print(f"{'ggquant.convert_mlx':28} {t_g:7.1f}s {r_g / 2**20:8.0f}MiB")
        print(f"{'mlx_lm.convert':28} {t_m:7.1f}s {r_m / 2**20:8.0f}MiB")
        print(f"\nmlx_lm / ggquant: {t_m / t_g:.1f}x time; outputs identical: {same}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
