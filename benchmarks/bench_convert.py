"""HF bf16 safetensors -> quantized GGUF: ggquant's one step vs llama.cpp's two steps, in one run.

Generates a Llama-shaped bf16 checkpoint of about 1 GB (random weights, a small trained BPE tokenizer,
vocabulary padded to 32000), then times, each in its own process (peak RSS = ru_maxrss of that process):

1. ``ggquant convert MODEL -o out.gguf -q PRESET``
2. llama.cpp: ``convert_hf_to_gguf.py --outtype f16`` (from a llama.cpp source tree, ``--llama-cpp-dir`` or
   ``LLAMA_CPP_DIR``), then ``llama_model_quantize`` (libllama from llama-cpp-python) F16 -> PRESET.

For each thread count (default 1 and all) it also times the kernels alone on the same tensors (read into
memory first, untimed, then quantized with the plan's types into a reused output buffer) and prints
convert / kernels; and the I/O floor: reading every byte of the mapped input plus filling a preallocated
memory-mapped file as large as the output (what the GGUF writer does; write() shown for comparison), and
convert / (kernels + floor). Each timed route starts after os.sync(), so that writing back the previous
run's output to disk does not fall inside it.

Run: python benchmarks/bench_convert.py [--preset Q4_K_M] [--layers 8] [--threads 1,2] [--repeat N]
     [--llama-cpp-dir DIR] [--profile] [--workdir DIR] [--keep]   (an existing DIR/model is reused)
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


def timed(cmd: list[str], env=None) -> tuple[float, float, str]:
    """Wall time, peak RSS (MiB) and stdout of a child process."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed:\n{p.stderr[-3000:]}")
    rss = [int(ln.split()[1]) for ln in p.stderr.splitlines() if ln.startswith("MAXRSS")]
    return dt, (rss[-1] / 1024.0 if rss else float("nan")), p.stdout


def source_tensors(model: Path) -> list[tuple[Path, str]]:
    """(shard, name) of every source tensor in file order (the order the converter writes them for Llama)."""
    import ggquant

    wm = json.loads((model / "model.safetensors.index.json").read_text())["weight_map"]
    out = []
    for shard in sorted(set(wm.values())):
        with ggquant.safe_open(model / shard) as f:
            out += [(model / shard, k) for k in sorted(f.keys(), key=lambda k: f.data_offsets(k)[0])]
    return out


def kernels_only(model: str, preset: str, nthreads: int) -> str:
    """Seconds to quantize every tensor of the plan from bf16 already in memory (read untimed first),
    with the plan's types, one kernel call per tensor into an output buffer already touched: what the
    kernels alone cost for this conversion."""
    import ml_dtypes

    import ggquant
    from ggquant.batch import QuantJob, quantize_batch

    from ggquant.convert.core import open_model
    from ggquant.convert.to_gguf import hf_source

    plan = ggquant.convert(model, None, preset, dry_run=True).plan
    shard_of = {name: shard for shard, name in source_tensors(Path(model))}
    hf = open_model(model)
    hf_name = {t.name: t.sources[0] for t in hf_source(hf).tensors}  # GGUF name -> checkpoint name
    hf.close()
    if len(shard_of) != len(plan.tensors):
        raise RuntimeError(f"{len(shard_of)} source tensors but {len(plan.tensors)} planned")
    total = cpu = 0.0
    out = np.ones(max(t.nbytes for t in plan.tensors), np.uint8)
    for t in plan.tensors:
        name = hf_name[t.name]
        shard = shard_of[name]
        with ggquant.safe_open(shard) as f:
            x = np.array(f[name]).view(ml_dtypes.bfloat16)  # a private copy in memory, not the map
        if x.size != int(np.prod(t.shape)):
            raise RuntimeError(f"{name} does not match {t.name}")
        x = x.reshape(t.shape)
        t0, c0 = time.perf_counter(), time.process_time()
        quantize_batch([QuantJob(x, t.type, out)], nthreads=nthreads)
        total += time.perf_counter() - t0
        cpu += time.process_time() - c0
        del x
    return f"{total} {cpu}"


def io_floor(model: str, out_bytes: int, workdir: str) -> str:
    """Seconds to (1) read every byte of the mapped input (``model``: a file, or a directory's
    ``*.safetensors``; a reduction over each memory-mapped file,
    pages dropped first as the converter drops them), (2) write ``out_bytes`` to a new file with write()
    from a reused buffer, temp name + rename (the writer's path where a file system cannot preallocate),
    and (3) the same bytes copied into a preallocated memory-mapped file (what the GGUF writer does):
    read + (3) is the I/O floor of a conversion with a warm page cache."""
    import mmap

    read = 0.0
    for shard in [Path(model)] if Path(model).is_file() else sorted(Path(model).glob("*.safetensors")):
        with open(shard, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            m.madvise(mmap.MADV_DONTNEED)
            a = np.frombuffer(m, np.uint64, len(m) // 8)
            t0 = time.perf_counter()
            for i in range(0, a.size, 1 << 23):  # 64 MiB at a time: a reduction reads every byte
                np.bitwise_xor.reduce(a[i:i + (1 << 23)])
            read += time.perf_counter() - t0
            del a
    buf = np.ones(min(out_bytes, 64 << 20), np.uint8)
    tmp, dst = Path(workdir) / ".floor.partial", Path(workdir) / "floor.out"
    t0 = time.perf_counter()
    with open(tmp, "wb") as f:
        left = out_bytes
        while left:
            n = min(left, buf.size)
            f.write(memoryview(buf)[:n])
            left -= n
    os.replace(tmp, dst)
    write = time.perf_counter() - t0
    dst.unlink()
    t0 = time.perf_counter()
    with open(tmp, "w+b") as f:
        os.posix_fallocate(f.fileno(), 0, out_bytes)
        with mmap.mmap(f.fileno(), out_bytes) as m:
            o = np.frombuffer(m, np.uint8)
            for i in range(0, out_bytes, buf.size):
                n = min(buf.size, out_bytes - i)
                o[i:i + n] = buf[:n]
            del o
    os.replace(tmp, dst)
    mapped = time.perf_counter() - t0
    dst.unlink()
    return f"{read} {write} {mapped}"


def floor_seconds(model: str, out_bytes: int, workdir: str) -> float:
    """The I/O floor of :func:`io_floor`: read the input + fill the output's preallocated mapping."""
    read, _, mapped = (float(x) for x in io_floor(model, out_bytes, workdir).split())
    return read + mapped


def llama_cpp_f16(src: Path, model: Path, f16: Path) -> list[str]:
    conv = (f"import sys, runpy; sys.path[:0] = [{str(src)!r}, {str(src / 'gguf-py')!r}]\n"
            "import conversion.base as b\no = b.TextModel.get_vocab_base_pre\n"
            "def p(self, t):\n    try:\n        return o(self, t)\n    except NotImplementedError:\n        return 'llama-bpe'\n"
            "b.TextModel.get_vocab_base_pre = p\n"
            f"sys.argv = ['c', {str(model)!r}, '--outtype', 'f16', '--outfile', {str(f16)!r}]\n"
            "try:\n"
            f"    runpy.run_path({str(src / 'convert_hf_to_gguf.py')!r}, run_name='__main__')\n"
            "except SystemExit:\n    pass")
    return child_rss(conv)


def profile_convert(model: Path, out: Path, preset: str, nthreads: int) -> None:
    """cProfile of one conversion in this process: where the time goes (top functions by own time)."""
    import cProfile
    import pstats

    import ggquant

    pr = cProfile.Profile()
    pr.enable()
    ggquant.convert(model, out, preset, quiet=True, nthreads=nthreads)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(14)


def digest(path: Path) -> str:
    """sha256 of a file, read in pieces (the parent must stay small: its children inherit ru_maxrss)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def many_presets(model: Path, work: Path, presets: list[str], nthreads: int, repeat: int) -> None:
    """N presets from one read (ggquant.convert_many) against N separate conversions, each in a child process."""
    outs = [work / f"many-{p}.gguf" for p in presets]
    one = (f"import ggquant, time; t = time.perf_counter(); ggquant.convert_many({str(model)!r}, "
           f"{str(work / 'many-{preset}.gguf')!r}, {presets!r}, quiet=True, nthreads={nthreads}); print(time.perf_counter() - t)")
    best_one, best_sep, rss_one = float("inf"), float("inf"), 0.0
    for _ in range(repeat):
        for p in outs:
            p.unlink(missing_ok=True)
        _, rss, so = timed(child_rss(one))
        if float(so.split()[-1]) < best_one:
            best_one, rss_one = float(so.split()[-1]), rss
        same = [digest(p) for p in outs]
        sep = 0.0
        for p, o in zip(presets, outs):
            o.unlink()
            _, _, so = timed(child_rss(f"import ggquant; print(ggquant.convert({str(model)!r}, {str(o)!r}, {p!r}, "
                                       f"quiet=True, nthreads={nthreads}).seconds)"))
            sep += float(so.split()[-1])
        best_sep = min(best_sep, sep)
        if same != [digest(p) for p in outs]:
            raise RuntimeError("convert_many wrote different bytes than the single-preset runs")
    print(f"\n{len(presets)} presets ({','.join(presets)}), {nthreads} threads: one pass {best_one:.2f} s "
          f"(peak RSS {rss_one:.0f} MiB) vs {len(presets)} separate conversions {best_sep:.2f} s: "
          f"{best_sep / best_one:.2f}x; the files are identical")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="Q4_K_M")
    ap.add_argument("--layers", type=int, default=8, help="8 layers of a 2048-wide Llama ~ 1.1 GB in bf16")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--llama-cpp-dir", default=os.environ.get("LLAMA_CPP_DIR"))
    ap.add_argument("--threads", default=f"1,{os.cpu_count() or 1}", help="thread counts to measure (default: 1 and all)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the best time of each route is reported")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one conversion (all threads)")
    ap.add_argument("--many", default=None, metavar="P1,P2,...",
                    help="also time these presets written in one pass (convert_many) against one convert per preset")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    import ggquant
    from ggquant.plan import LLAMA_FTYPE

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_convert_"))
    model = work / "model"
    try:
        t0 = time.perf_counter()
        if not (model / "model.safetensors.index.json").exists():
            # in a child: Linux keeps ru_maxrss across fork+exec, so the parent must stay small
            code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_convert as b; "
                    f"print(b.make_model(__import__('pathlib').Path({str(model)!r}), {args.layers}))")
            gen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
            if gen.returncode != 0:
                raise RuntimeError(gen.stderr[-3000:])
        size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
        print(f"model {model}: {size / 1e9:.2f} GB bf16 ({time.perf_counter() - t0:.0f} s); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        dry = ggquant.convert(model, None, args.preset, dry_run=True)
        if any(not ggquant.type_info(t.type).can_quantize for t in dry.plan.tensors):
            print(f"preset {args.preset} not available in this build ({dry.plan.warnings[-1]}); using Q8_0")
            args.preset = "Q8_0"
        threads = [int(t) for t in args.threads.split(",")]
        out = work / "ggquant.gguf"
        src = Path(args.llama_cpp_dir) if args.llama_cpp_dir else None
        f16, q = work / "llama-f16.gguf", work / "llama-q.gguf"
        best: dict[tuple[str, int], tuple[float, float]] = {}

        def keep(key: tuple[str, int], dt: float, rss: float) -> None:
            if key not in best or dt < best[key][0]:
                best[key] = (dt, rss)

        def fresh(*paths: Path) -> None:  # replacing a file would time the unlinking of the old one
            for p in paths:
                p.unlink(missing_ok=True)
            # the last run's output is written back to disk now, not while the next route is timed
            os.sync()

        kcode = f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_convert as b; print(b.kernels_only({str(model)!r}, {args.preset!r}, {{n}}))"
        for rnd in range(args.repeat):
            for n in threads:  # the routes interleaved, so that load changes hit them alike
                os.sync()
                dt, rss, so = timed(child_rss(kcode.format(n=n)))
                keep(("kernels", n), float(so.split()[-2]), rss)
                keep(("kernels cpu", n), float(so.split()[-1]), rss)
                fresh(out)
                dt, rss, so = timed(child_rss(f"import ggquant, time; c = time.process_time(); print(ggquant.convert("
                                              f"{str(model)!r}, {str(out)!r}, {args.preset!r}, quiet=True, nthreads={n})"
                                              f".seconds, time.process_time() - c)"))
                keep(("convert", n), float(so.split()[-2]), rss)
                keep(("convert cpu", n), float(so.split()[-1]), rss)
                keep(("process", n), dt, rss)
                if n == threads[0]:
                    _, _, so = timed(child_rss(
                        f"import sys; sys.path.insert(0, {str(HERE)!r}); import bench_convert as b; "
                        f"print(b.io_floor({str(model)!r}, {out.stat().st_size}, {str(work)!r}))"))
                    for key, v in zip(("read", "write", "mapped write"), so.split()):
                        keep((key, 0), float(v), 0.0)
                if src is not None:
                    if rnd == 0 and n == threads[0]:  # convert_hf_to_gguf.py is single-threaded
                        fresh(f16)
                        dt, rss, _ = timed(llama_cpp_f16(src, model, f16))
                        keep(("llama-f16", 0), dt, rss)
                    fresh(q)
                    dt, rss, _ = timed(child_rss(
                        f"import sys; sys.path.insert(0, {str(HERE.parent / 'tests')!r}); import llama_oracle\n"
                        f"llama_oracle.quantize_file({str(f16)!r}, {str(q)!r}, {LLAMA_FTYPE[args.preset]}, nthread={n})"))
                    keep(("llama-q", n), dt, rss)
            print(f"round {rnd + 1}: load average {os.getloadavg()[0]:.1f}", file=sys.stderr)

        print(f"\npreset {args.preset}, output {out.stat().st_size / 1e6:.0f} MB; seconds (best of {args.repeat}); "
              f"GB/s = bf16 input bytes per second; RSS = peak of the process (MiB)")
        print("convert = the ggquant.convert() call; process = the whole `python -c` (interpreter start, imports); "
              "CPU = process CPU seconds (all threads), less sensitive to other load than wall time")
        rd, wr, mw = best[("read", 0)][0], best[("write", 0)][0], best[("mapped write", 0)][0]
        floor = rd + mw  # the converter fills a preallocated mapping of its output, as the floor's second part does
        print(f"I/O floor (one thread, warm cache): read the mapped input {rd:.2f} s ({size / rd / 1e9:.1f} GB/s) + "
              f"fill the output's preallocated mmap {mw:.2f} s = {floor:.2f} s (with write() instead: {wr:.2f} s)")
        print("k + f = kernels only + I/O floor: what reading, quantizing and writing cost one after another")
        print("| threads | kernels only | convert | convert / kernels | convert / (k + f) | CPU: kernels, convert, ratio "
              "| convert GB/s | process | convert RSS | llama.cpp F16 + quantize | llama.cpp total / process | llama.cpp RSS |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in threads:
            k, (c, rc), pw = best[("kernels", n)][0], best[("convert", n)], best[("process", n)][0]
            kc, cc = best[("kernels cpu", n)][0], best[("convert cpu", n)][0]
            row = (f"| {n} | {k:.2f} | {c:.2f} | {c / k:.2f}x | {c / (k + floor):.2f}x | {kc:.2f}, {cc:.2f}, {cc / kc:.2f}x "
                   f"| {size / c / 1e9:.2f} "
                   f"| {pw:.2f} | {rc:.0f} |")
            if src is not None:
                (lf, rf), (lq, rq) = best[("llama-f16", 0)], best[("llama-q", n)]
                row += f" {lf:.1f} + {lq:.1f} = {lf + lq:.1f} | {(lf + lq) / pw:.1f}x | {max(rf, rq):.0f} |"
            else:
                row += " (pass --llama-cpp-dir) | | |"
            print(row)
        if args.many:
            many_presets(model, work, args.many.split(","), threads[-1], args.repeat)
        if args.profile:
            profile_convert(model, out, args.preset, threads[-1])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
