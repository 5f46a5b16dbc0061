"""HF bf16 safetensors -> quantized GGUF: ggquant's one step vs llama.cpp's two steps, in one run.

Generates a Llama-shaped bf16 checkpoint of about 1 GB (random weights, a small trained BPE tokenizer,
vocabulary padded to 32000), then times, each in its own process (peak RSS = ru_maxrss of that process):

1. ``ggquant convert MODEL -o out.gguf -q PRESET``
2. llama.cpp: ``convert_hf_to_gguf.py --outtype f16`` (from a llama.cpp source tree, ``--llama-cpp-dir`` or
   ``LLAMA_CPP_DIR``), then ``llama_model_quantize`` (libllama from llama-cpp-python) F16 -> PRESET.

Run: python benchmarks/bench_convert.py [--preset Q4_K_M] [--layers 8] [--workdir DIR] [--keep]
Needs: torch, transformers, tokenizers, safetensors, llama-cpp-python (for the llama.cpp route).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def make_model(d: Path, layers: int, hidden: int = 2048, ffn: int = 5632, vocab: int = 32000) -> int:
    import hf_models

    d.mkdir(parents=True, exist_ok=True)
    heads, kv = 16, 4
    hd = hidden // heads
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
           "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "tie_word_embeddings": False, "bos_token_id": vocab - 4, "eos_token_id": vocab - 3,
           "torch_dtype": "bfloat16"}
    (d / "config.json").write_text(json.dumps(cfg))
    hf_models.bpe_tokenizer(d, 384, hf_models.LLAMA3_REGEX, bos=True)
    rng = np.random.default_rng(0)

    def bf16(*shape, scale=0.02):
        x = (rng.standard_normal(shape, dtype=np.float32) * scale).view(np.uint32)
        return ((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype(np.uint16)

    def save_file(tensors: dict, path: str) -> None:  # bf16 safetensors written directly
        header, off = {"__metadata__": {"format": "pt"}}, 0
        for k, v in tensors.items():
            header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
            off += v.nbytes
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(path, "wb") as f:
            f.write(len(h).to_bytes(8, "little") + h)
            for v in tensors.values():
                f.write(v.tobytes())

    total = 0
    shards = []
    tensors = {"model.embed_tokens.weight": bf16(vocab, hidden), "lm_head.weight": bf16(vocab, hidden),
               "model.norm.weight": bf16(hidden, scale=1.0)}
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors.update({
            p + "input_layernorm.weight": bf16(hidden, scale=1.0),
            p + "post_attention_layernorm.weight": bf16(hidden, scale=1.0),
            p + "self_attn.q_proj.weight": bf16(heads * hd, hidden), p + "self_attn.k_proj.weight": bf16(kv * hd, hidden),
            p + "self_attn.v_proj.weight": bf16(kv * hd, hidden), p + "self_attn.o_proj.weight": bf16(hidden, heads * hd),
            p + "mlp.gate_proj.weight": bf16(ffn, hidden), p + "mlp.up_proj.weight": bf16(ffn, hidden),
            p + "mlp.down_proj.weight": bf16(hidden, ffn)})
        if (i + 1) % 4 == 0 or i == layers - 1:
            name = f"model-{len(shards) + 1:05d}-of-XXXXX.safetensors"
            save_file(tensors, str(d / name))
            shards.append((name, list(tensors)))
            total += sum(v.nbytes for v in tensors.values())
            tensors = {}
    n = len(shards)
    wm = {}
    for k, (name, keys) in enumerate(shards):
        new = name.replace("XXXXX", f"{n:05d}")
        (d / name).rename(d / new)
        wm.update({t: new for t in keys})
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": wm}))
    return total


def child_rss(code: str) -> list[str]:
    return [sys.executable, "-c", code + "\nimport resource,sys; print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"]


def timed(cmd: list[str], env=None) -> tuple[float, float]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed:\n{p.stderr[-3000:]}")
    rss = [int(ln.split()[1]) for ln in p.stderr.splitlines() if ln.startswith("MAXRSS")]
    return dt, (rss[-1] / 1024.0 if rss else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="Q4_K_M")
    ap.add_argument("--layers", type=int, default=8, help="8 layers of a 2048-wide Llama ~ 1.1 GB in bf16")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--llama-cpp-dir", default=os.environ.get("LLAMA_CPP_DIR"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    import ggquant
    from ggquant.plan import LLAMA_FTYPE

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_convert_"))
    model = work / "model"
    try:
        t0 = time.perf_counter()
        # in a child: Linux keeps ru_maxrss across fork+exec, so the parent must stay small
        code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_convert as b; "
                f"print(b.make_model(__import__('pathlib').Path({str(model)!r}), {args.layers}))")
        gen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        if gen.returncode != 0:
            raise RuntimeError(gen.stderr[-3000:])
        size = int(gen.stdout.split()[-1])
        print(f"generated {model}: {size / 1e9:.2f} GB bf16 in {time.perf_counter() - t0:.0f} s")
        dry = ggquant.convert(model, None, args.preset, dry_run=True)
        if any(not ggquant.type_info(t.type).can_quantize for t in dry.plan.tensors):
            print(f"preset {args.preset} not available in this build ({dry.plan.warnings[-1]}); using Q8_0")
            args.preset = "Q8_0"
        threads = os.cpu_count() or 1
        out = work / "ggquant.gguf"
        dt_g, rss_g = timed(child_rss(f"import ggquant; ggquant.convert({str(model)!r}, {str(out)!r}, {args.preset!r}, quiet=True)"))
        print(f"ggquant convert -> {args.preset}: {dt_g:7.1f} s, peak RSS {rss_g:7.0f} MiB, {out.stat().st_size / 1e6:.0f} MB")
        if not args.llama_cpp_dir:
            print("llama.cpp route skipped: pass --llama-cpp-dir (a llama.cpp source tree with convert_hf_to_gguf.py)")
            return
        src = Path(args.llama_cpp_dir)
        f16 = work / "llama-f16.gguf"
        conv = (f"import sys, runpy; sys.path[:0] = [{str(src)!r}, {str(src / 'gguf-py')!r}]\n"
                "import conversion.base as b\no = b.TextModel.get_vocab_base_pre\n"
                "def p(self, t):\n    try:\n        return o(self, t)\n    except NotImplementedError:\n        return 'llama-bpe'\n"
                "b.TextModel.get_vocab_base_pre = p\n"
                f"sys.argv = ['c', {str(model)!r}, '--outtype', 'f16', '--outfile', {str(f16)!r}]\n"
                "try:\n"
                f"    runpy.run_path({str(src / 'convert_hf_to_gguf.py')!r}, run_name='__main__')\n"
                "except SystemExit:\n    pass")
        dt_c, rss_c = timed(child_rss(conv))
        print(f"llama.cpp convert_hf_to_gguf.py -> F16: {dt_c:7.1f} s, peak RSS {rss_c:7.0f} MiB")
        q = work / "llama-q.gguf"
        quant = (f"import sys; sys.path.insert(0, {str(HERE.parent / 'tests')!r}); import llama_oracle\n"
                 f"llama_oracle.quantize_file({str(f16)!r}, {str(q)!r}, {LLAMA_FTYPE[args.preset]}, nthread={threads})")
        dt_q, rss_q = timed(child_rss(quant))
        print(f"llama.cpp llama_model_quantize F16 -> {args.preset}: {dt_q:7.1f} s, peak RSS {rss_q:7.0f} MiB, "
              f"{q.stat().st_size / 1e6:.0f} MB")
        print(f"\ntwo-step llama.cpp total {dt_c + dt_q:.1f} s vs ggquant {dt_g:.1f} s: {(dt_c + dt_q) / dt_g:.2f}x faster; "
              f"peak RSS {max(rss_c, rss_q):.0f} MiB vs {rss_g:.0f} MiB (model {size / 2**20:.0f} MiB)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
