"""Build and runtime configuration: version, OpenMP, threads, SIMD level."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from . import _core
from ._checks import threads_arg
from .errors import GGQuantError


def get_num_threads() -> int:
    """Threads the kernels use by default (OpenMP's default, i.e. ``OMP_NUM_THREADS`` or all cores)."""
    return _core.get_num_threads()


def set_num_threads(n: int | None) -> None:
    """Set the default thread count for kernels; ``None`` or ``0`` restores OpenMP's default.

    Output bytes never depend on the thread count.
    """
    _core.set_num_threads(threads_arg(n))


def get_simd_level() -> str:
    """The instruction set the quantizers use now: ``"generic"``, ``"avx2"`` or ``"avx512"``."""
    return _core.get_simd_level()


def set_simd_level(level: str) -> None:
    """Force an instruction set for all later calls (bytes never change, only speed).

    The environment variable ``GGQUANT_SIMD`` does the same at import time, e.g.
    ``GGQUANT_SIMD=generic`` forces the scalar reference kernels.
    """
    if not isinstance(level, str):
        raise GGQuantError(f"the SIMD level must be a str such as 'avx2', got {type(level).__name__}")
    _core.set_simd_level(level)


def config() -> dict[str, Any]:
    """The build and runtime configuration as a dict."""
    return dict(_core.build_info())


def show_config(file: TextIO | None = None) -> None:
    """Print version, OpenMP, thread count and SIMD level.

    Example:
        >>> import ggquant
        >>> ggquant.show_config()  # doctest: +ELLIPSIS
        ggquant ...
    """
    c = config()
    out = file or sys.stdout
    print(f"ggquant {c['version']}", file=out)
    print(f"  compiler:        {c['compiler']}", file=out)
    print(f"  openmp:          {'on' if c['openmp'] else 'off'}", file=out)
    print(f"  threads:         {c['num_threads']}", file=out)
    print(f"  simd in use:     {c['simd_active']} (best on this CPU: {c['simd_best']})", file=out)
    print(f"  simd available:  {', '.join(c['simd_available'])}", file=out)


__all__ = ["get_num_threads", "set_num_threads", "get_simd_level", "set_simd_level", "config", "show_config"]
