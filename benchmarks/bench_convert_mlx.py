"""HF bf16 safetensors -> MLX-quantized directory: ``ggquant.convert_mlx`` vs ``mlx_lm.convert``, in one run.

Generates a Llama-shaped bf16 checkpoint (2048 wide, --layers layers, vocabulary 32000; about 0.6 GB at
the default 4 layers), then runs each converter in its own process (peak RSS = that process's ru_maxrss),
for 1 and all threads, next to the kernels alone on the same tensors and the I/O floor, and checks that
both outputs hold the same tensors, byte for byte.

Run: python benchmarks/bench_convert_mlx.py [--quant mlx:int4] [--layers 4] [--threads 1,N] [--workdir DIR] [--keep]
Needs: mlx[cpu], mlx-lm.
"""

from __future__ import annotations

import argparse
import json
import os
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


def kernels_only(model: str, quant: str, nthreads: int) -> float:
    """Seconds to quantize the tensors convert_mlx quantizes, from bf16 already in memory (read untimed)."""
    import time

    import ggquant
    from ggquant.convert import to_mlx
    from ggquant.hf.checkpoint import open_checkpoint

    r = ggquant.convert_mlx(model, None, quant, dry_run=True)
    ck = open_checkpoint(model)
    total = 0.0
    for t in r.tensors:
        if t.quant is not None:
            a = np.array(ck.stored(t.name))
            t0 = time.perf_counter()
            to_mlx._mlx.quantize_raw(a, to_mlx._KERNEL_CODES[t.dtype], *t.quant, nthreads, t.name)
            total += time.perf_counter() - t0
    ck.close()
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quant", default="mlx:int4", help="mlx:int4, mlx:int8, mlx:mxfp8, mlx:nvfp4, mlx:mxfp4: one type on "
                    "every matrix, as mlx_lm.convert writes (Ollama's int4 rule has no mlx_lm counterpart to compare)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", default=f"1,{os.cpu_count() or 1}", help="thread counts (default: 1 and all)")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    import ggquant.mlx as gm

    mode, bits, gs = gm.resolve(args.quant.removeprefix("mlx:"))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_convert_mlx-"))
    try:
        src = work / "model"
        # in a child: Linux keeps ru_maxrss across fork+exec, so the parent must stay small
        gen = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(HERE)!r}); "
                              f"import bench_convert_mlx as b, pathlib; print(b.make_model(pathlib.Path({str(src)!r}), "
                              f"{args.layers}))"], check=True, capture_output=True, text=True)
        size = int(gen.stdout.split()[-1])
        print(f"model: {size / 2**20:.0f} MiB of bf16 weights, {args.layers} layers; quant {args.quant}; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
        rows = []
        for n in [int(t) for t in args.threads.split(",")]:
            shutil.rmtree(work / "ours", ignore_errors=True)
            t_k, _ = run(f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_convert_mlx as b; "
                         f"t = b.kernels_only({str(src)!r}, {args.quant!r}, {n}); t0 = time.perf_counter() - t")  # RUN prints t
            t_g, r_g = run(f"import ggquant; t0 = time.perf_counter(); ggquant.convert_mlx({str(src)!r}, {str(work / 'ours')!r}, "
                           f"{args.quant!r}, quiet=True, nthreads={n})")  # fmt: skip
            rows.append((n, t_k, t_g, r_g))
        out_bytes = sum(p.stat().st_size for p in (work / "ours").glob("*.safetensors"))
        sys.path.insert(0, str(HERE))
        from bench_convert import floor_seconds

        floor = floor_seconds(str(src), out_bytes, str(work))
        t_m, r_m = run(f"import mlx_lm; t0 = time.perf_counter(); mlx_lm.convert({str(src)!r}, {str(work / 'ref')!r}, quantize=True, "
                       f"q_group_size={gs}, q_bits={bits}, q_mode={mode!r})")  # fmt: skip
        import mlx.core as mx

        def arrays(d: Path) -> dict:
            out = {}
            for f in sorted(d.glob("model*.safetensors")):
                out.update({k: np.array(v.view(mx.uint8)) for k, v in mx.load(str(f)).items()})
            return out

        a, b = arrays(work / "ours"), arrays(work / "ref")
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        print("wall seconds of the converter call in its own process (imports excluded); kernels = "
              "the quantized tensors from memory; floor = read the mapped input + fill the output's preallocated mmap, one thread")
        print(f"I/O floor: {floor:.2f} s; mlx_lm.convert: {t_m:.1f} s, peak RSS {r_m / 2**20:.0f} MiB")
        print("| threads | kernels | convert_mlx | convert / kernels | convert / floor | GB/s in | peak RSS MiB "
              "| mlx_lm / convert_mlx |")
        print("|---|---|---|---|---|---|---|---|")
        for n, t_k, t_g, r_g in rows:
            print(f"| {n} | {t_k:.2f} | {t_g:.2f} | {t_g / t_k:.2f}x | {t_g / floor:.2f}x | {size / t_g / 1e9:.2f} "
                  f"| {r_g / 2**20:.0f} | {t_m / t_g:.1f}x |")
        print(f"\noutputs identical to mlx_lm's: {same}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
