"""ctypes access to llama.cpp's own quantizer (libllama from llama-cpp-python) as a test oracle.

- :func:`compute_types`: llama.cpp's per-tensor type choice (``llama_quant_compute_types`` on a mock model
  built by ``llama_quant_model_from_metadata``) for a synthetic tensor list.
- :func:`quantize_file`: ``llama_model_quantize`` on a GGUF file (what ``llama-quantize`` runs).

The library is found in the directory named by ``GGQUANT_LIBLLAMA_DIR`` or ``GGQUANT_GGML_LIB_DIR``
(as tests/oracle/ggml_oracle.py), else in the installed ``llama_cpp`` package (``llama_cpp/lib``;
tests/oracle/build_oracle.sh builds and installs it). :func:`available` says why not when it cannot be loaded.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path

_LIBS: tuple | None = None
_ERR: str | None = None


def _lib_dir() -> Path | None:
    for var in ("GGQUANT_LIBLLAMA_DIR", "GGQUANT_GGML_LIB_DIR"):  # the latter: tests/oracle/ggml_oracle.py's
        env = os.environ.get(var)
        if env and (Path(env) / "libllama.so").is_file():
            return Path(env)
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


class TensorOverride(ctypes.Structure):
    _fields_ = [("pattern", ctypes.c_char_p), ("type", ctypes.c_int)]


class ImatrixData(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("data", ctypes.POINTER(ctypes.c_float)), ("size", ctypes.c_size_t)]


class QuantizeParams(ctypes.Structure):
    _fields_ = [
        ("nthread", ctypes.c_int32), ("ftype", ctypes.c_int), ("output_tensor_type", ctypes.c_int),
        ("token_embedding_type", ctypes.c_int), ("allow_requantize", ctypes.c_bool),
        ("quantize_output_tensor", ctypes.c_bool), ("only_copy", ctypes.c_bool), ("pure", ctypes.c_bool),
        ("keep_split", ctypes.c_bool), ("dry_run", ctypes.c_bool), ("imatrix", ctypes.POINTER(ImatrixData)),
        ("kv_overrides", ctypes.c_void_p), ("tt_overrides", ctypes.POINTER(TensorOverride)),
        ("prune_layers", ctypes.c_void_p), ("max_buf_size", ctypes.c_size_t),
    ]


class ModelDesc(ctypes.Structure):
    _fields_ = [("architecture", ctypes.c_char_p)] + [(n, ctypes.c_uint32) for n in (
        "n_embd", "n_ff", "n_layer", "n_head", "n_head_kv", "n_expert", "n_embd_head_k", "n_embd_head_v")]


def _load():
    global _LIBS, _ERR
    if _LIBS is not None or _ERR is not None:
        return _LIBS
    d = _lib_dir()
    if d is None or not (d / "libllama.so").is_file():
        _ERR = "llama-cpp-python (libllama) is not installed"
        return None
    try:
        mode = getattr(os, "RTLD_GLOBAL", 0)
        base = ctypes.CDLL(str(d / "libggml-base.so"), mode=mode)
        ctypes.CDLL(str(d / "libggml.so"), mode=mode)
        llama = ctypes.CDLL(str(d / "libllama.so"), mode=mode)
    except OSError as e:
        _ERR = f"cannot load libllama: {e}"
        return None
    base.ggml_init.argtypes = [_InitParams]
    base.ggml_init.restype = ctypes.c_void_p
    base.ggml_free.argtypes = [ctypes.c_void_p]
    base.ggml_new_tensor.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]
    base.ggml_new_tensor.restype = ctypes.c_void_p
    base.ggml_set_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    base.ggml_set_name.restype = ctypes.c_void_p
    llama.llama_backend_init.argtypes = []
    llama.llama_backend_init()
    llama.llama_model_quantize_default_params.restype = QuantizeParams
    llama.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(QuantizeParams)]
    llama.llama_model_quantize.restype = ctypes.c_uint32
    # llama-ext.h declares these without extern "C": bind the Itanium-mangled names
    for plain, mangled in (
        ("llama_quant_model_from_metadata", "_Z31llama_quant_model_from_metadataPK22llama_quant_model_desc"),
        ("llama_quant_init", "_Z16llama_quant_initPK11llama_modelPK27llama_model_quantize_params"),
        ("llama_quant_free", "_Z16llama_quant_freeP19quantize_state_impl"),
        ("llama_quant_compute_types", "_Z25llama_quant_compute_typesP19quantize_state_impl11llama_ftypePP11ggml_tensorP9ggml_typem"),
    ):
        try:
            setattr(llama, plain, getattr(llama, mangled))
        except AttributeError:
            pass
    try:
        llama.llama_quant_model_from_metadata.argtypes = [ctypes.POINTER(ModelDesc)]
        llama.llama_quant_model_from_metadata.restype = ctypes.c_void_p
        llama.llama_quant_init.argtypes = [ctypes.c_void_p, ctypes.POINTER(QuantizeParams)]
        llama.llama_quant_init.restype = ctypes.c_void_p
        llama.llama_quant_free.argtypes = [ctypes.c_void_p]
        llama.llama_quant_compute_types.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                                                    ctypes.POINTER(ctypes.c_int), ctypes.c_size_t]
        llama.llama_model_free.argtypes = [ctypes.c_void_p]
        llama.llama_log_set.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    except AttributeError as e:
        _ERR = f"libllama lacks the llama_quant_* test API: {e}"
        return None
    _LIBS = (base, llama)
    return _LIBS


def available() -> str | None:
    """None when the oracle can be used, else the reason it cannot."""
    _load()
    return _ERR


def silence() -> None:
    """Route libllama's log to nowhere (it otherwise writes to stderr)."""
    _silence(_load()[1])


def _silence(llama) -> None:
    cb = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(lambda *a: None)
    _silence.cb = cb  # keep alive
    llama.llama_log_set(cb, None)


def _set_overrides(params: QuantizeParams, tensor_types) -> list:
    """Point params.tt_overrides at a null-terminated array of (pattern, type); returns what must stay alive."""
    if not tensor_types:
        return []
    arr = (TensorOverride * (len(tensor_types) + 1))()
    keep: list = [arr]
    for i, (pat, t) in enumerate(tensor_types):
        keep.append(pat.encode())
        arr[i].pattern, arr[i].type = keep[-1], int(t)
    arr[len(tensor_types)].pattern = None
    params.tt_overrides = ctypes.cast(arr, ctypes.POINTER(TensorOverride))
    return keep


def compute_types(tensors, ftype: int, *, arch: str, n_layer: int, n_head: int, n_head_kv: int, n_expert: int = 0,
                  n_embd: int = 64, n_ff: int = 128, tensor_types=None, pure: bool = False) -> dict[str, int]:
    """llama.cpp's ggml type id for each (name, numpy shape); tensors are passed in llama-quantize's order."""
    import re

    base, llama = _load()
    _silence(llama)
    desc = ModelDesc(arch.encode(), n_embd, n_ff, n_layer, n_head, n_head_kv, n_expert, n_embd // n_head, n_embd // n_head)
    model = llama.llama_quant_model_from_metadata(ctypes.byref(desc))
    params = llama.llama_model_quantize_default_params()
    params.ftype = ftype
    params.pure = pure
    keep = _set_overrides(params, tensor_types)  # noqa: F841  (the override array must outlive the call)
    qs = llama.llama_quant_init(model, ctypes.byref(params))
    ctx = base.ggml_init(_InitParams(64 << 20, None, True))
    try:
        def key(n):
            m = re.match(r"blk\.(\d+)\.", n)
            return (int(m.group(1)) if m else -1, n)

        items = sorted(((n, tuple(s)) for n, s in tensors), key=lambda x: key(x[0]))
        ptrs = (ctypes.c_void_p * len(items))()
        for i, (n, shape) in enumerate(items):
            ne = (ctypes.c_int64 * 4)(*(list(reversed(shape)) + [1] * (4 - len(shape))))
            t = base.ggml_new_tensor(ctx, 0, len(shape), ne)
            base.ggml_set_name(t, n.encode())
            ptrs[i] = t
        out = (ctypes.c_int * len(items))()
        llama.llama_quant_compute_types(qs, ftype, ptrs, out, len(items))
        return {n: out[i] for i, (n, _) in enumerate(items)}
    finally:
        base.ggml_free(ctx)
        llama.llama_quant_free(qs)
        llama.llama_model_free(model)


def quantize_file(inp: str, out: str, ftype: int, *, nthread: int = 2, imatrix: dict | None = None,
                  tensor_types=None, pure: bool = False) -> None:
    """Run llama.cpp's ``llama_model_quantize`` (what llama-quantize does) from ``inp`` to ``out``."""
    import numpy as np

    _, llama = _load()
    _silence(llama)
    params = llama.llama_model_quantize_default_params()
    params.ftype, params.nthread, params.pure = ftype, nthread, pure
    keep = []
    if imatrix:
        arr = (ImatrixData * (len(imatrix) + 1))()
        for i, (k, v) in enumerate(imatrix.items()):
            v = np.ascontiguousarray(v, np.float32)
            keep += [k.encode(), v]
            arr[i].name, arr[i].data, arr[i].size = keep[-2], v.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), v.size
        arr[len(imatrix)].name = None
        params.imatrix = ctypes.cast(arr, ctypes.POINTER(ImatrixData))
        keep.append(arr)
    keep += _set_overrides(params, tensor_types)
    rc = llama.llama_model_quantize(str(inp).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed ({rc}) for {inp}")
