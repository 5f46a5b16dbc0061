"""ggquant: quantize neural-network weights to GGUF and MLX formats, bit-identical to the
reference implementations, from Python.

Example:
    >>> import numpy as np, ggquant
    >>> w = np.random.default_rng(0).standard_normal((8, 256), dtype=np.float32)
    >>> blocks = ggquant.quantize(w, "q4_0")          # uint8 ggml blocks
    >>> w2 = ggquant.dequantize(blocks, "q4_0")       # float32, shape (8, 256)
    >>> w2.shape
    (8, 256)
"""

from __future__ import annotations

from . import gguf, imatrix, mlx, plan, safetensors  # usable as ggquant.gguf.GGUFReader after import ggquant
from .convert import ConversionResult, convert, convert_many, convert_mlx
from .config import config, get_num_threads, get_simd_level, set_num_threads, set_simd_level, show_config
from . import errors as _errors
from .errors import (
    FormatError,
    GGQuantError,
    GGQuantIOError,
    GGQuantWarning,
    GGUFError,
    NonFiniteError,
    SafetensorsError,
    ShapeError,
    UnsupportedTypeError,
)
from .imatrix import Imatrix, imatrix_for, load_imatrix, read_imatrix
from .mlx import MLXQuantized
from .qtypes import GGMLType, TypeInfo, all_types, resolve_type, type_info
from .safetensors import (
    SafetensorsCheckpoint,
    SafetensorsFile,
    SafetensorsWriter,
    load_checkpoint,
    load_file,
    safe_open,
    save_file,
    save_sharded,
)
from .quality import EvalResult, Evaluator, compute_imatrix, evaluate
from .requantize import RequantizeResult, quantize_file
from .quants import dequantize, quant_shape_from_byte_shape, quant_shape_to_byte_shape, quantize, row_size
from .precision import Profile, profile
from .budget import plan_for_budget

__version__: str = config()["version"]

__all__ = [
    "__version__",
    "quantize",
    "dequantize",
    "convert",
    "convert_many",
    "ConversionResult",
    "row_size",
    "quant_shape_to_byte_shape",
    "quant_shape_from_byte_shape",
    "load_imatrix",
    "read_imatrix",
    "imatrix_for",
    "Imatrix",
    "GGMLType",
    "MLXQuantized",
    "convert_mlx",
    "TypeInfo",
    "type_info",
    "resolve_type",
    "all_types",
    "config",
    "show_config",
    "get_num_threads",
    "set_num_threads",
    "get_simd_level",
    "set_simd_level",
    "safe_open",
    "SafetensorsFile",
    "SafetensorsWriter",
    "SafetensorsCheckpoint",
    "save_file",
    "load_file",
    "save_sharded",
    "load_checkpoint",
    "evaluate",
    "Evaluator",
    "EvalResult",
    "compute_imatrix",
    "profile",
    "Profile",
    "plan_for_budget",
    "quantize_file",
    "RequantizeResult",
]
__all__ += _errors.__all__  # the error classes, listed once in errors.py
