"""llama.cpp's two steps as test oracles: ``convert_hf_to_gguf.py`` (from the unpacked llama.cpp sources)
and ``llama_model_quantize`` with every parameter llama-quantize passes (libllama via tests/llama_oracle.py)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import ggquant
import llama_oracle
from ggquant.plan import LLAMA_FTYPE


def require_two_steps() -> None:
    """Skip the calling test module unless gguf, torch, transformers, libllama and llama.cpp's sources are there."""
    import pytest

    for mod in ("gguf", "torch", "transformers"):
        pytest.importorskip(mod)
    if llama_oracle.available() is not None:
        pytest.skip(str(llama_oracle.available()), allow_module_level=True)
    if reference_converter() is None:
        pytest.skip("no llama.cpp source tree (LLAMA_CPP_DIR or tests/oracle/build_oracle.sh)", allow_module_level=True)


def reference_converter() -> Path | None:
    """llama.cpp's source tree: $LLAMA_CPP_DIR, else the sdist unpacked by tests/oracle/build_oracle.sh."""
    sub = Path("llama_cpp_python-0.3.36") / "vendor" / "llama.cpp"
    oracles = [Path(os.environ.get("ORACLE_DIR", Path.home() / ".cache" / "ggquant-oracle")),
               Path(__file__).resolve().parent.parent / "build" / "oracle"]
    for d in (os.environ.get("LLAMA_CPP_DIR"), *(o / sub for o in oracles)):
        if d and (Path(d) / "convert_hf_to_gguf.py").is_file() and (Path(d) / "conversion").is_dir():
            return Path(d)
    return None


def convert_hf_to_gguf(model_dir: Path, out: Path, outtype: str = "f32", pre: str = "") -> None:
    """Run convert_hf_to_gguf.py; ``pre`` names the pre-tokenizer for vocabularies without a known chkhsh."""
    src = reference_converter()
    assert src is not None
    script = (f"import sys, runpy; sys.path[:0] = [{str(src)!r}, {str(src / 'gguf-py')!r}]\n"
              "import conversion.base as b\n"
              "o = b.TextModel.get_vocab_base_pre\n"
              "def p(self, t):\n    try:\n        return o(self, t)\n    except NotImplementedError:\n"
              f"        return {pre!r}\n"
              "b.TextModel.get_vocab_base_pre = p\n"
              f"sys.argv = ['c', {str(model_dir)!r}, '--outtype', {outtype!r}, '--outfile', {str(out)!r}]\n"
              f"runpy.run_path({str(src / 'convert_hf_to_gguf.py')!r}, run_name='__main__')\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert p.returncode == 0, p.stderr[-2000:]


def sha(p: Path) -> str:
    """sha256 of a whole file, as ``sha256sum`` prints it."""
    return hashlib.sha256(p.read_bytes()).hexdigest()


def kvs(path: Path) -> list:
    """A GGUF file's metadata in order, as (key, value types, value), the header fields left out."""
    import gguf

    return [(f.name, [int(t) for t in f.types], f.contents()) for f in gguf.GGUFReader(str(path)).fields.values()
            if not f.name.startswith("GGUF.")]


def tensors(path: Path) -> dict[str, tuple[int, bytes]]:
    """A GGUF file's tensors: name -> (ggml type, bytes)."""
    import gguf

    return {t.name: (int(t.tensor_type), bytes(t.data)) for t in gguf.GGUFReader(str(path)).tensors}


def logits(path: Path, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits (llama-cpp-python) for every position of ``ids``."""
    import llama_cpp

    llama_oracle.silence()
    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=64, n_threads=2, verbose=True)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def assert_like_llama_cpp(model_dir: Path, model, tmp: Path, pre: str = "", preset: str = "Q4_K_M") -> None:
    """ggquant against llama.cpp's two steps for one Hugging Face model: the F32 file's metadata equal key by key
    (types and values) and its tensors byte for byte to convert_hf_to_gguf.py's, llama.cpp's logits of it close
    to transformers' (``model``), and ``preset`` (by ggquant.convert, and by ggquant.quantize_file of the reference
    F32 file) the same bytes as llama_model_quantize's. ``pre``: see :func:`convert_hf_to_gguf`."""
    import hf_models
    import torch

    ref, ours = tmp / "ref-f32.gguf", tmp / "ours-f32.gguf"
    convert_hf_to_gguf(model_dir, ref, "f32", pre=pre)
    ggquant.convert(model_dir, ours, "F32", quiet=True)
    assert kvs(ours) == kvs(ref)
    assert tensors(ours) == tensors(ref)
    ids = hf_models.reference_ids(model_dir, hf_models.TEST_TEXT)
    with torch.no_grad():
        want = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
    got = logits(ours, ids)
    assert np.abs(got - want).max() / np.abs(want).max() < 2e-3
    q_ours, q_requant, q_ref = tmp / "q-ours.gguf", tmp / "q-requant.gguf", tmp / "q-ref.gguf"
    ggquant.convert(model_dir, q_ours, preset, quiet=True)
    ggquant.quantize_file(ref, q_requant, preset, quiet=True)
    llama_quantize(ref, q_ref, preset)
    assert sha(q_ours) == sha(q_ref)
    assert sha(q_requant) == sha(q_ref)


class _Val(ctypes.Union):
    _fields_ = [("i64", ctypes.c_int64), ("f64", ctypes.c_double), ("b", ctypes.c_bool), ("s", ctypes.c_char * 128)]


class _KVOverride(ctypes.Structure):  # llama.h: struct llama_model_kv_override
    _fields_ = [("tag", ctypes.c_int), ("key", ctypes.c_char * 128), ("val", _Val)]


_INT, _STR = 0, 3


def llama_quantize(inp, out, preset, *, imatrix=None, kv=(), tensor_types=(), token_embedding_type=None,
                   output_tensor_type=None, pure=False, allow_requantize=False, keep_split=False):
    """llama_model_quantize with every parameter ggquant's quantize_file has (kv: [(key, int | bytes)])."""
    _, llama = llama_oracle._load()
    llama_oracle.silence()
    p = llama.llama_model_quantize_default_params()
    p.ftype, p.nthread, p.pure = LLAMA_FTYPE[preset], 2, pure
    p.allow_requantize, p.keep_split = allow_requantize, keep_split
    if token_embedding_type is not None:
        p.token_embedding_type = int(ggquant.resolve_type(token_embedding_type))
    if output_tensor_type is not None:
        p.output_tensor_type = int(ggquant.resolve_type(output_tensor_type))
    keep = []
    if imatrix:
        arr = (llama_oracle.ImatrixData * (len(imatrix) + 1))()
        for i, (k, v) in enumerate(imatrix.items()):
            v = np.ascontiguousarray(v, np.float32).reshape(-1)
            keep += [k.encode(), v]
            arr[i].name, arr[i].data, arr[i].size = keep[-2], v.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), v.size
        p.imatrix = ctypes.cast(arr, ctypes.POINTER(llama_oracle.ImatrixData))
        keep.append(arr)
    if kv:
        karr = (_KVOverride * (len(kv) + 1))()
        for i, (k, v) in enumerate(kv):
            karr[i].key = k.encode()
            if isinstance(v, bytes):
                karr[i].tag, karr[i].val.s = _STR, v
            else:
                karr[i].tag, karr[i].val.i64 = _INT, v
        p.kv_overrides = ctypes.cast(karr, ctypes.c_void_p)
        keep.append(karr)
    if tensor_types:
        tarr = (llama_oracle.TensorOverride * (len(tensor_types) + 1))()
        for i, (pat, t) in enumerate(tensor_types):
            keep.append(pat.encode())
            tarr[i].pattern, tarr[i].type = keep[-1], int(ggquant.resolve_type(t))
        p.tt_overrides = ctypes.cast(tarr, ctypes.POINTER(llama_oracle.TensorOverride))
        keep.append(tarr)
    rc = llama.llama_model_quantize(str(inp).encode(), str(out).encode(), ctypes.byref(p))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed for {inp}")
