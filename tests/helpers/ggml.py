"""ggml's own C quantizers as the oracle, addressed by ggquant type names.

tests/oracle/ggml_oracle.py is the ctypes bridge to libggml-base; this module wraps it the way the kernel
tests call it and gives the one reason shown when it cannot be loaded. Tests get it through the session
fixture ``ggml`` (tests/conftest.py), which skips with that reason.
"""

from __future__ import annotations

import numpy as np

import ggquant

try:
    from oracle import ggml_oracle
except ImportError as e:  # pragma: no cover - depends on how the tests are laid out
    ggml_oracle = None
    _IMPORT_ERROR: str | None = f"tests/oracle/ggml_oracle.py not importable: {e}"
else:
    _IMPORT_ERROR = None

INSTALL_HINT = (
    "install it with tests/oracle/build_oracle.sh (builds llama-cpp-python==0.3.36 and its libggml-base "
    "from source), or set GGQUANT_GGML_LIB_DIR to a directory holding libggml-base.so"
)


class GGML:
    """ggml_quantize_chunk and to_float over whole (rows, n) arrays, with ggquant type names."""

    def __init__(self, oracle: ggml_oracle.GGMLOracle) -> None:
        self.oracle = oracle

    def quantize(self, t: str, x: np.ndarray, imatrix: np.ndarray | None = None) -> np.ndarray:
        """ggml_quantize_chunk over all rows of x: uint8 (rows, row bytes)."""
        out = self.oracle.quantize_chunk(int(ggquant.resolve_type(t)), np.ascontiguousarray(x, np.float32), imatrix)
        return np.asarray(out).view(np.uint8).reshape(x.shape[0], -1)

    def dequantize(self, t: str, blocks: np.ndarray, n: int) -> np.ndarray:
        """ggml's to_float of the type over rows of blocks: float32 (rows, n)."""
        out = self.oracle.dequantize(int(ggquant.resolve_type(t)), np.ascontiguousarray(blocks), n)
        return np.asarray(out, np.float32).reshape(-1, n)


def load() -> tuple[GGML | None, str]:
    """The oracle, or None and the reason it is missing (with what to install)."""
    if ggml_oracle is None:
        why = _IMPORT_ERROR
    else:
        oracle = ggml_oracle.get_oracle()
        if oracle is not None:
            return GGML(oracle), ""
        why = str(ggml_oracle.unavailable_reason()).removeprefix("ggml oracle unavailable: ")
    return None, f"ggml oracle unavailable ({why}): {INSTALL_HINT}"
