"""The ggquant exception hierarchy.

Every error ggquant raises for bad input derives from :class:`GGQuantError`, itself a
:class:`ValueError`, so ``except ValueError`` keeps working. Subclasses name one cause each, for
callers that want to catch exactly that cause.

Example:
    >>> import numpy as np, ggquant
    >>> try:
    ...     ggquant.quantize(np.zeros((2, 30), np.float32), "q4_0")
    ... except ggquant.ShapeError as e:
    ...     print("cannot quantize:", e)  # doctest: +ELLIPSIS
    cannot quantize: ...
"""

from __future__ import annotations


class GGQuantError(ValueError):
    """Base class of all ggquant errors."""


class ShapeError(GGQuantError):
    """A shape or size does not fit the requested type (e.g. a row length not a multiple of the block)."""


class NonFiniteError(GGQuantError):
    """The input contains NaN or Inf where finite values are required."""


class UnsupportedTypeError(GGQuantError):
    """An unknown, retired or not (yet) supported type or operation."""


class FormatError(GGQuantError):
    """A file is malformed or violates its format's rules."""


class GGUFError(FormatError):
    """A malformed GGUF file, or metadata that cannot be written as GGUF."""


class SafetensorsError(FormatError):
    """A malformed safetensors file or index, or tensors or metadata that cannot be written as safetensors."""


class GGQuantIOError(GGQuantError):
    """The operating system refused a file operation (open, map, write, rename)."""


class GGQuantWarning(UserWarning):
    """What ggquant warns about through :mod:`warnings` (a fallback type, a file written without a
    vocabulary...); the CLI prints these on stderr."""


__all__ = [
    "GGQuantWarning",
    "GGQuantError",
    "ShapeError",
    "NonFiniteError",
    "UnsupportedTypeError",
    "FormatError",
    "GGUFError",
    "SafetensorsError",
    "GGQuantIOError",
]
