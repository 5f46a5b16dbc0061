"""MLX quantization modes (``mlx.core.quantize``), bit-identical to MLX, on any machine.

MLX stores a quantized matrix as a triple: the codes packed into ``uint32`` words along the last
axis, one scale per group of ``group_size`` values, and (affine only) one bias per group. This
module produces exactly the arrays ``mlx.core.quantize`` returns on the CPU, and decodes them
exactly as ``mlx.core.dequantize`` does, without needing MLX installed.

Modes (MLX's table; the named presets are those of ``ollama create --quantize``):

=========  ========  =====  ==========  ============  ===========
preset     mode      bits   group       scales        biases
=========  ========  =====  ==========  ============  ===========
int4       affine    4      32          input dtype   input dtype
int8       affine    8      64          input dtype   input dtype
(generic)  affine    1-6,8  32/64/128   input dtype   input dtype
mxfp4      mxfp4     4      32          uint8 E8M0    none
nvfp4      nvfp4     4      16          uint8 E4M3    none
mxfp8      mxfp8     8      32          uint8 E8M0    none
=========  ========  =====  ==========  ============  ===========

In :func:`ggquant.quantize` the bare names ``"mxfp4"`` and ``"nvfp4"`` mean ggml's GGUF types of
the same name; write ``"mlx:mxfp4"`` / ``"mlx:nvfp4"`` there (``ggquant.mlx.quantize`` takes both).

Note that Ollama's newest importer (``x/quant``) uses group 64 for int4; pass ``group_size=64``
to :func:`quantize` for that layout.

Bit-identical to MLX 0.32.4 (the ``mlx[cpu]`` wheel the tests compare with). Earlier MLX releases
differ in two places: they chose the mxfp4/mxfp8 exponent as round(log2) rather than ceil(log2),
and decoded the E4M3 byte 0x7F as 480 rather than NaN.

Affine quantizes float16/bfloat16 input after widening it to float32, as MLX's CPU kernel does;
the fp modes replay MLX's op graph, which computes in the input dtype. Float64 input is first
rounded to float32 (MLX's CPU kernel does not take float64).

Example:
    >>> import numpy as np, ggquant
    >>> w = np.random.default_rng(0).standard_normal((4, 64), dtype=np.float32)
    >>> q = ggquant.quantize(w, "int4")
    >>> q.weight.shape, q.scales.shape, q.biases.shape, q.mode, q.bits, q.group_size
    ((4, 8), (4, 2), (4, 2), 'affine', 4, 32)
    >>> wq, scales, biases = q[:3]                 # the triple mlx.core.quantize returns
    >>> back = ggquant.dequantize(q)               # float32, shape (4, 64)
    >>> bool(np.all(np.abs(back - w) <= np.abs(np.repeat(scales, 32, axis=1))))
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, TypeGuard

import numpy as np

from . import _core
from ._checks import array_arg, bool_arg, float_arg, int_arg, threads_arg
from .errors import GGQuantError, NonFiniteError, ShapeError, UnsupportedTypeError
from .qtypes import resolve_type
from .safetensors import safe_open, save_file  # only the expert-group blobs; see tests/test_layers.py

_MODE_ID = {"affine": 0, "mxfp4": 1, "nvfp4": 2, "mxfp8": 3}

# MLX's defaults per mode (group_size, bits).
_MODE_DEFAULTS = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}

#: Named presets: name -> (mode, bits, group_size). The names ``ollama create --quantize`` takes.
PRESETS: dict[str, tuple[str, int, int]] = {
    "int4": ("affine", 4, 32),
    "int8": ("affine", 8, 64),
    "mxfp4": ("mxfp4", 4, 32),
    "nvfp4": ("nvfp4", 4, 16),
    "mxfp8": ("mxfp8", 8, 32),
}


class MLXQuantized(NamedTuple):
    """An MLX-quantized tensor.

    The first three fields are the arrays ``mlx.core.quantize`` returns (``biases`` is ``None``
    for the fp modes, which ``mlx.core.dequantize`` also accepts), so
    ``w, scales, biases = q[:3]`` and ``mx.dequantize(*q[:3], **q.mlx_kwargs)`` work for every
    mode. :attr:`arrays` is MLX's tuple itself (two arrays for the fp modes).

    Attributes:
        weight: uint32 codes, shape ``x.shape[:-1] + (x.shape[-1] * bits // 32,)``.
        scales: one per group, shape ``x.shape[:-1] + (x.shape[-1] // group_size,)``; the input
            dtype for affine, uint8 (E8M0 or E4M3 bits) for the fp modes.
        biases: affine only, like ``scales``; ``None`` otherwise.
        mode: ``"affine"``, ``"mxfp4"``, ``"nvfp4"`` or ``"mxfp8"``.
        bits: bits per code.
        group_size: values per scale.
        global_scale: the nvfp4 global scale passed to :func:`quantize`, else ``None``.
    """

    weight: np.ndarray
    scales: np.ndarray
    biases: np.ndarray | None
    mode: str
    bits: int
    group_size: int
    global_scale: float | None = None

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """MLX's tuple: ``(weight, scales, biases)`` for affine, ``(weight, scales)`` otherwise."""
        return (self.weight, self.scales) if self.biases is None else (self.weight, self.scales, self.biases)

    @property
    def mlx_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``mlx.core.dequantize`` / ``quantized_matmul`` (no global scale)."""
        return {"group_size": self.group_size, "bits": self.bits, "mode": self.mode}

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the tensor the codes stand for."""
        return (*self.weight.shape[:-1], self.weight.shape[-1] * 32 // self.bits)

    @property
    def quant_type(self) -> str:
        """The name written as ``quant_type`` metadata: the preset name when the mode and bits
        match one (``int4``, ``int8``, ``mxfp4``, ``nvfp4``, ``mxfp8``), else ``int<bits>``."""
        return quant_type_name(self.mode, self.bits)

    def to_mlx(self) -> tuple[Any, ...]:
        """MLX's tuple as ``mlx.core`` arrays (needs ``mlx``; bfloat16 scales go through their bits)."""
        import mlx.core as mx

        def conv(a: np.ndarray) -> Any:
            if a.dtype.name == "bfloat16":
                return mx.array(a.view(np.uint16)).view(mx.bfloat16)
            return mx.array(a)

        return tuple(conv(a) for a in self.arrays)


def quant_type_name(mode: str, bits: int) -> str:
    """The ``quant_type`` name for a mode and bit width (``int<bits>`` for affine)."""
    return f"int{bits}" if mode == "affine" else mode


def resolve(mode: str, bits: int | None = None, group_size: int | None = None) -> tuple[str, int, int]:
    """Normalise a mode or preset name plus optional overrides to ``(mode, bits, group_size)``.

    Args:
        mode: ``"affine"``, ``"mxfp4"``, ``"nvfp4"``, ``"mxfp8"`` or a preset (``"int4"``,
            ``"int8"``; also ``"int2"``..``"int6"`` as affine at group 64), case-insensitive.
        bits, group_size: override the mode's or preset's defaults.

    Returns:
        ``(mode, bits, group_size)``; validity is checked by the kernels.

    Example:
        >>> from ggquant.mlx import resolve
        >>> resolve("int4"), resolve("affine"), resolve("int4", group_size=64)
        (('affine', 4, 32), ('affine', 4, 64), ('affine', 4, 64))
    """
    key = str(mode).strip().lower()
    key = key.removeprefix("mlx:")
    if key in PRESETS:
        m, b, g = PRESETS[key]
    elif key in _MODE_DEFAULTS:
        m, (g, b) = key, _MODE_DEFAULTS[key]
    elif key.startswith("int") and key[3:].isdigit():
        m, b, g = "affine", int(key[3:]), 64
    else:
        raise UnsupportedTypeError(
            f"unknown MLX quantization mode {mode!r}; expected one of {sorted(_MODE_DEFAULTS)} or {sorted(PRESETS)}"
        )
    return m, int_arg(b if bits is None else bits, "bits", 1, 64), int_arg(g if group_size is None else group_size, "group_size", 1, 1 << 20)


def is_mlx_type(name: Any) -> bool:
    """True if ``name`` is a string naming an MLX mode or preset (what ``ggquant.quantize`` routes here)."""
    if not isinstance(name, str):
        return False
    try:
        resolve(name)
    except UnsupportedTypeError:
        return False
    return True


def routes_to_mlx(t: Any) -> TypeGuard[str]:
    """Whether ``ggquant.quantize(x, t)`` means an MLX mode.

    ``"mlx:<mode>"`` always does; a bare name does when it is an MLX mode or preset and not also a
    ggml type name (``"mxfp4"`` and ``"nvfp4"`` are both, and stay ggml's for ``ggquant.quantize``).

    Example:
        >>> from ggquant.mlx import routes_to_mlx
        >>> routes_to_mlx("int4"), routes_to_mlx("mxfp4"), routes_to_mlx("mlx:mxfp4"), routes_to_mlx("q4_0")
        (True, False, True, False)
    """
    if not isinstance(t, str):
        return False
    if t.strip().lower().startswith("mlx:"):
        return True
    try:
        resolve_type(t)
    except UnsupportedTypeError:
        return is_mlx_type(t)
    return False


def _source(x: Any) -> tuple[np.ndarray, str]:
    arr = array_arg(x, "the input")
    dt = arr.dtype
    if dt == np.float32:
        return np.ascontiguousarray(arr), "f32"
    if dt == np.float16:
        return np.ascontiguousarray(arr), "f16"
    if dt.name == "bfloat16" and dt.itemsize == 2:
        return np.ascontiguousarray(arr), "bf16"
    if dt == np.float64:
        return np.ascontiguousarray(arr, dtype=np.float32), "f32"
    raise GGQuantError(f"expected float32, float16, bfloat16 (ml_dtypes) or float64 input, got {dt}")


def _out_arrays(lead: tuple[int, ...], n: int, mode: str, bits: int, gs: int, dtype: np.dtype,
                places: Sequence[np.ndarray] | None = None) -> MLXQuantized:
    """The output arrays, new or viewed over ``places`` (the raw bytes of weight, scales[, biases])."""
    if n <= 0 or n % gs != 0:
        raise ShapeError(f"the last dimension {n} is not a positive multiple of the group size {gs}")
    sdt = dtype if mode == "affine" else np.dtype(np.uint8)
    specs = [((*lead, n * bits // 32), np.dtype(np.uint32)), ((*lead, n // gs), sdt)]
    if mode == "affine":
        specs.append(((*lead, n // gs), sdt))
    if places is None:
        arrays = [np.empty(shape, dt) for shape, dt in specs]
    else:
        if len(places) != len(specs) or any(p.nbytes != math.prod(sh) * dt.itemsize for p, (sh, dt) in zip(places, specs)):
            raise ShapeError(f"output places of {[p.nbytes for p in places]} bytes do not fit {mode} {bits}-bit outputs "
                             f"of shapes {[sh for sh, _ in specs]}")
        arrays = [p.view(dt).reshape(sh) for p, (sh, dt) in zip(places, specs)]
    return MLXQuantized(arrays[0], arrays[1], arrays[2] if mode == "affine" else None, mode, bits, gs)


def _run(
    src: np.ndarray, code: str, q: MLXQuantized, global_scale: float | None, nthreads: int | None, allow_nonfinite: bool
) -> None:
    n = src.shape[-1]
    rows = src.reshape(-1, n)
    if code == "bf16":
        rows = rows.view(np.uint16)
    nrows = rows.shape[0]
    w = q.weight.reshape(nrows, -1)
    s = q.scales.reshape(nrows, -1)
    b = None if q.biases is None else q.biases.reshape(nrows, -1)
    if s.dtype.name == "bfloat16":
        s = s.view(np.uint16)
        b = None if b is None else b.view(np.uint16)
    _core.mlx_quantize(
        _MODE_ID[q.mode],
        q.bits,
        q.group_size,
        global_scale,
        rows,
        code,
        w,
        s,
        b,
        threads_arg(nthreads),
        bool_arg(allow_nonfinite, "allow_nonfinite"),
    )


_MX_LARGE_SCALE = 0xF0  # E8M0 code of 2^113: only groups this large can overflow on decode


def _first_nonfinite_group(q: MLXQuantized) -> tuple[int, int] | None:
    """(row, group) of the first group that decodes to Inf/NaN, reading the scales (and biases);
    only rows with very large fp-mode scales are dequantized to make sure."""
    if q.scales.size == 0:
        return None
    s = q.scales.reshape(-1, q.scales.shape[-1])
    if q.mode == "affine":
        if s.dtype.kind != "f" and s.dtype.name != "bfloat16":
            return None  # raw bfloat16 bits (the converter's path): not decodable here
        bias = q.biases.reshape(s.shape)  # type: ignore[union-attr]
        top = s.dtype.type(2**q.bits - 1)
        with np.errstate(all="ignore"):  # decode = scale * code + bias, computed in the scales' dtype
            span = s * top
            ok = np.isfinite(span) & np.isfinite(bias) & np.isfinite(span + bias)
        bad = np.argwhere(~ok)
        return None if bad.size == 0 else (int(bad[0][0]), int(bad[0][1]))
    if q.mode == "nvfp4":
        bad = np.argwhere((s & 0x7F) == 0x7F)  # the E4M3 NaN codes
        return None if bad.size == 0 else (int(bad[0][0]), int(bad[0][1]))
    rows = np.flatnonzero(s.max(axis=1) >= _MX_LARGE_SCALE)
    if rows.size == 0:
        return None
    w = q.weight.reshape(s.shape[0], -1)
    values = dequantize(q._replace(weight=w[rows], scales=s[rows]))
    bad = np.argwhere(~np.isfinite(values))
    return None if bad.size == 0 else (int(rows[bad[0][0]]), int(bad[0][1]) // q.group_size)


def quantize(
    x: Any,
    mode: str = "affine",
    bits: int | None = None,
    group_size: int | None = None,
    *,
    global_scale: float | None = None,
    allow_nonfinite: bool = False,
    nthreads: int | None = None,
    name: str | None = None,
) -> MLXQuantized:
    """Quantize ``x`` along its last axis exactly as ``mlx.core.quantize`` does.

    Args:
        x: float32, float16, bfloat16 (``ml_dtypes``) or float64 array-like with at least one
            dimension; the last one must be a multiple of the group size.
        mode: an MLX mode (``"affine"``, ``"mxfp4"``, ``"nvfp4"``, ``"mxfp8"``) or a preset name
            (``"int4"`` = affine 4 bits group 32, ``"int8"`` = affine 8 bits group 64); an
            ``"mlx:"`` prefix is accepted and ignored.
        bits, group_size: as in MLX; ``None`` takes the mode's or preset's default (affine: 4 bits,
            group 64). Affine takes bits 1, 2, 3, 4, 5, 6, 8 and groups 32, 64, 128.
        global_scale: nvfp4 only: MLX's optional float32 per-tensor scale.
        allow_nonfinite: by default NaN or Inf raise :class:`NonFiniteError`; if True such groups
            are quantized with the same formulas (their codes are not guaranteed to match MLX).
        nthreads: threads to use (``None``: :func:`ggquant.get_num_threads`); never changes the result.
        name: tensor name for error messages.

    Returns:
        :class:`MLXQuantized`; its first three fields are MLX's ``(w_q, scales, biases)``.

    Example:
        >>> import numpy as np, ggquant.mlx as gm
        >>> q = gm.quantize(np.ones((2, 32), np.float32), "nvfp4")
        >>> q.weight.shape, q.scales.dtype, q.biases
        ((2, 4), dtype('uint8'), None)
    """
    m, b, g = resolve(mode, bits, group_size)
    try:
        src, code = _source(x)
        if src.ndim == 0:
            raise ShapeError("cannot quantize a 0-d array: need at least one row")
        if g <= 0:
            raise GGQuantError(f"invalid group size {g}")
        gscale = None if global_scale is None else _float32_scale(float_arg(global_scale, "global_scale"))
        q = _out_arrays(src.shape[:-1], src.shape[-1], m, b, g, src.dtype)
        _run(src, code, q, gscale, nthreads, allow_nonfinite)
        bad = None if allow_nonfinite else _first_nonfinite_group(q._replace(global_scale=gscale))
        if bad is not None:
            raise NonFiniteError(
                f"row {bad[0]}, group {bad[1]}: the finite input is too large for MLX {m} with {b} bits; the group "
                "decodes to Inf or NaN (pass allow_nonfinite=True to keep these codes)"
            )
    except GGQuantError as e:
        raise (type(e)(f"tensor {name!r}: {e}") if name else e) from None
    return q._replace(global_scale=gscale)


def quantize_raw(
    src: np.ndarray, code: str, mode: str, bits: int, gs: int, nthreads: int | None, name: str | None,
    places: Sequence[np.ndarray] | None = None,
) -> MLXQuantized:
    """:func:`quantize` for an array whose dtype code (``"f32"``, ``"f16"``, ``"bf16"``) is known: bfloat16
    may come as raw uint16 bits (the scales and biases then are uint16 bits too), as the converters read it.
    ``places``: where the outputs go (the raw uint8 bytes of weight, scales and, for affine, biases, e.g.
    their places in an output file); new arrays when None.

    Example:
        >>> import numpy as np
        >>> quantize_raw(np.zeros((1, 32), np.uint16), "bf16", "affine", 4, 32, None, "w").scales.dtype
        dtype('uint16')
    """
    src = np.ascontiguousarray(src)
    try:
        q = _out_arrays(src.shape[:-1], src.shape[-1], mode, bits, gs, src.dtype, places)
        _run(src, code, q, None, nthreads, False)
    except GGQuantError as e:
        raise (type(e)(f"tensor {name!r}: {e}") if name else e) from None
    return q


def _float32_scale(v: float) -> float:
    with np.errstate(over="ignore"):  # past float32's range: Inf, which the kernel refuses
        return float(np.float32(v))


def _dtype_code(dt: Any) -> tuple[str, Any]:
    """(kernel code, numpy dtype or None for bfloat16) for a requested output dtype."""
    if isinstance(dt, str) and dt.lower() in ("bfloat16", "bf16"):
        return "bf16", None
    try:
        d = np.dtype(dt)
    except TypeError:
        raise GGQuantError(f"unsupported output dtype {dt!r}; expected float32, float16 or bfloat16") from None
    if d.name == "bfloat16":
        return "bf16", d
    if d == np.float32:
        return "f32", d
    if d == np.float16:
        return "f16", d
    raise GGQuantError(f"unsupported output dtype {dt!r}; expected float32, float16 or bfloat16")


def dequantize(q: MLXQuantized, *, dtype: Any = None, nthreads: int | None = None) -> np.ndarray:
    """Decode an :class:`MLXQuantized` exactly as ``mlx.core.dequantize`` does.

    Args:
        q: the quantized tensor (e.g. from :func:`quantize`, or an ``MLXQuantized`` built from
            arrays read from a file).
        dtype: MLX's ``dtype`` argument: the dtype the decode computes in. ``None`` uses MLX's
            default (the scales' dtype for affine, bfloat16 for the fp modes) and returns the
            values in a float32 array; a dtype (``np.float32``, ``np.float16``, ``"bfloat16"``)
            returns an array of that dtype (bfloat16 needs ``ml_dtypes``). With an nvfp4 global
            scale MLX computes in float32 whatever ``dtype`` says, and so does this.
        nthreads: threads to use.

    Returns:
        The values ``mlx.core.dequantize(*q[:3], **q.mlx_kwargs, dtype=dtype)`` returns, of shape
        :attr:`MLXQuantized.shape`.

    Example:
        >>> import numpy as np, ggquant
        >>> q = ggquant.quantize(np.full((1, 32), 0.5, np.float32), "mxfp8")
        >>> ggquant.dequantize(q)[0, :3].tolist()
        [0.5, 0.5, 0.5]
    """
    if not isinstance(q, MLXQuantized):
        raise GGQuantError("expected an MLXQuantized (from ggquant.mlx.quantize)")
    mode = q.mode
    if mode not in _MODE_ID:
        raise UnsupportedTypeError(f"unknown MLX quantization mode {mode!r}")
    w = np.ascontiguousarray(q.weight)
    if w.dtype != np.uint32:
        raise GGQuantError(f"the weight must be uint32, got {w.dtype}")
    if w.ndim == 0:
        raise ShapeError("the weight must have at least one dimension")
    nrows = math.prod(w.shape[:-1])
    scales = np.ascontiguousarray(q.scales)
    if mode == "affine":
        if q.biases is None:
            raise GGQuantError("affine dequantization needs biases")
        biases = np.ascontiguousarray(q.biases)
        if biases.dtype != scales.dtype:
            raise GGQuantError(f"scales ({scales.dtype}) and biases ({biases.dtype}) differ in dtype")
        scode, _ = _dtype_code(scales.dtype)
        if scales.dtype.name == "bfloat16":
            scales, biases = scales.view(np.uint16), biases.view(np.uint16)
        default = scode
    else:
        if q.biases is not None:
            raise GGQuantError(f"{mode} has no biases")
        if scales.dtype != np.uint8:
            raise GGQuantError(f"{mode} scales must be uint8, got {scales.dtype}")
        biases, scode, default = None, "f32", "bf16"
    if scales.shape[:-1] != w.shape[:-1] or (biases is not None and biases.shape != scales.shape):
        raise ShapeError(f"scales {scales.shape} do not match the weight {w.shape}")
    ocode, odt = (default, None) if dtype is None else _dtype_code(dtype)
    gscale = None if q.global_scale is None else float(q.global_scale)
    out = _core.mlx_dequantize(
        _MODE_ID[mode],
        int(q.bits),
        int(q.group_size),
        gscale,
        w.reshape(nrows, -1),
        scales.reshape(nrows, -1),
        None if biases is None else biases.reshape(nrows, -1),
        scode,
        ocode,
        threads_arg(nthreads),
    )
    out = out.reshape(*w.shape[:-1], out.shape[-1])
    if dtype is None or gscale is not None:
        return out
    if odt is None:
        import ml_dtypes

        odt = np.dtype(ml_dtypes.bfloat16)
    return out.astype(odt)  # exact: the values are already representable in odt


# ---- packed expert groups ---------------------------------------------------------------------


def quantize_experts(
    experts: Any,
    mode: str = "affine",
    bits: int | None = None,
    group_size: int | None = None,
    *,
    nthreads: int | None = None,
    name: str | None = None,
) -> MLXQuantized:
    """Quantize the experts of a MoE projection into one stacked tensor.

    Args:
        experts: a 3-D array ``(n_experts, out, in)`` or a sequence of equally shaped 2-D arrays
            (stacked in order; each is read in place, never copied into a stacked float buffer).
        mode, bits, group_size: as for :func:`quantize`.
        nthreads: threads to use.
        name: tensor name for error messages.

    Returns:
        One :class:`MLXQuantized` whose arrays have a leading expert axis, identical to
        ``mlx.core.quantize`` of the stacked ``(n_experts, out, in)`` tensor.

    Example:
        >>> import numpy as np, ggquant.mlx as gm
        >>> e = [np.ones((8, 64), np.float32) * i for i in range(3)]
        >>> gm.quantize_experts(e, "int4").weight.shape
        (3, 8, 8)
    """
    if isinstance(experts, np.ndarray) or not isinstance(experts, Sequence):
        arr = np.asarray(experts)
        if arr.ndim != 3:
            raise ShapeError(f"stacked experts must be 3-D (n_experts, out, in), got shape {arr.shape}")
        return quantize(arr, mode, bits, group_size, nthreads=nthreads, name=name)
    parts = [_source(e) for e in experts]
    if not parts:
        raise ShapeError("no experts given")
    shape, code = parts[0][0].shape, parts[0][1]
    if len(shape) != 2:
        raise ShapeError(f"each expert must be 2-D, got shape {shape}")
    for i, (p, c) in enumerate(parts):
        if p.shape != shape or c != code:
            raise ShapeError(
                f"expert {i} has shape {p.shape} / dtype {p.dtype}, expert 0 has {shape} / {parts[0][0].dtype}"
            )
    m, b, g = resolve(mode, bits, group_size)
    try:
        q = _out_arrays((len(parts), shape[0]), shape[1], m, b, g, parts[0][0].dtype)
        for i, (p, c) in enumerate(parts):
            slot = MLXQuantized(q.weight[i], q.scales[i], None if q.biases is None else q.biases[i], m, b, g)
            _run(p, c, slot, None, nthreads, False)
    except GGQuantError as e:
        raise (type(e)(f"tensor {name!r}: {e}") if name else e) from None
    return q


def pack_expert_group(
    tensors: Mapping[str, Any],
    quant_type: str | Mapping[str, str | None],
    *,
    nthreads: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Quantize the stacked expert tensors of one MoE layer into Ollama's blob layout.

    Ollama's importer (``x/create``) stacks each projection's per-expert weights into one
    ``(n_experts, out, in)`` tensor named ``<group>.<proj>.weight`` and stores all projections of
    a layer in one safetensors blob: for a quantized tensor ``NAME`` the codes as ``NAME``, the
    scales as ``NAME.scale`` and (affine) the biases as ``NAME.bias``. When every quantized
    tensor shares one type the blob's ``__metadata__`` carries ``quant_type`` and ``group_size``;
    otherwise each quantized tensor gets ``NAME.quant_type`` and ``NAME.group_size``. Tensors
    with type ``None`` are stored unquantized under ``NAME``.

    Args:
        tensors: name -> 3-D array or sequence of 2-D per-expert arrays.
        quant_type: one preset/mode name for all tensors, or name -> preset/mode (or ``None``).
        nthreads: threads to use.

    Returns:
        ``(arrays, metadata)``: the blob's tensors by name and its string metadata.

    Example:
        >>> import numpy as np, ggquant.mlx as gm
        >>> t = {"layers.0.mlp.experts.down_proj.weight": np.ones((2, 4, 64), np.float32),
        ...      "layers.0.mlp.experts.up_proj.weight": np.ones((2, 4, 64), np.float32)}
        >>> arrays, meta = gm.pack_expert_group(t, {"layers.0.mlp.experts.down_proj.weight": "int8",
        ...                                        "layers.0.mlp.experts.up_proj.weight": "int4"})
        >>> sorted(arrays)[:3], meta["layers.0.mlp.experts.up_proj.weight.group_size"]
        (['layers.0.mlp.experts.down_proj.weight', 'layers.0.mlp.experts.down_proj.weight.bias', 'layers.0.mlp.experts.down_proj.weight.scale'], '32')
    """
    types = {k: (quant_type if isinstance(quant_type, str) else quant_type.get(k)) for k in tensors}
    arrays: dict[str, np.ndarray] = {}
    done: dict[str, MLXQuantized] = {}
    for key, value in tensors.items():
        qt = types[key]
        if qt is None:
            arr = (
                np.asarray(value)
                if isinstance(value, np.ndarray) or not isinstance(value, Sequence)
                else np.stack(value)
            )
            arrays[key] = arr
            continue
        q = quantize_experts(value, qt, nthreads=nthreads, name=key)
        done[key] = q
        arrays[key] = q.weight
        arrays[key + ".scale"] = q.scales
        if q.biases is not None:
            arrays[key + ".bias"] = q.biases
    kinds = {(q.quant_type, q.group_size) for q in done.values()}
    metadata: dict[str, str] = {}
    if len(kinds) == 1 and len(done) == len(tensors):
        ((qt, gs),) = kinds
        metadata = {"quant_type": qt, "group_size": str(gs)}
    else:
        for key, q in done.items():
            metadata[key + ".quant_type"] = q.quant_type
            metadata[key + ".group_size"] = str(q.group_size)
    return arrays, metadata


def save_expert_group(
    path: Any,
    tensors: Mapping[str, Any],
    quant_type: str | Mapping[str, str | None],
    *,
    nthreads: int | None = None,
) -> dict[str, str]:
    """Quantize a MoE layer's expert tensors (:func:`pack_expert_group`) and write them as one
    safetensors blob with Ollama's naming and ``quant_type``/``group_size`` metadata. The file
    appears atomically.

    Args:
        path: the ``.safetensors`` file to write.
        tensors, quant_type, nthreads: as for :func:`pack_expert_group`.

    Returns:
        The metadata written.

    Example:
        >>> import numpy as np, os, tempfile, ggquant, ggquant.mlx as gm
        >>> p = os.path.join(tempfile.mkdtemp(), "experts.safetensors")
        >>> gm.save_expert_group(p, {"l.0.experts.up_proj.weight": np.ones((4, 8, 64), np.float32)}, "int4")
        {'quant_type': 'int4', 'group_size': '32'}
        >>> gm.load_expert_group(p)["l.0.experts.up_proj.weight"].weight.shape
        (4, 8, 8)
    """
    arrays, metadata = pack_expert_group(tensors, quant_type, nthreads=nthreads)
    save_file(arrays, path, metadata)
    return metadata


def load_expert_group(path: Any) -> dict[str, Any]:
    """Read a blob written by :func:`save_expert_group` (or Ollama): name -> :class:`MLXQuantized`
    (or the plain array for unquantized tensors). Arrays are memory-mapped views."""
    f = safe_open(path)
    arrays = {k: f.get(k) for k in f}
    return expert_group_from_blob(arrays, f.metadata() or {})


def expert_group_from_blob(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> dict[str, Any]:
    """Inverse of :func:`pack_expert_group`: name -> :class:`MLXQuantized` (or the plain array).

    Example:
        >>> import numpy as np, ggquant, ggquant.mlx as gm
        >>> arrays, meta = gm.pack_expert_group({"e.w": np.ones((2, 4, 32), np.float32)}, "mxfp8")
        >>> q = gm.expert_group_from_blob(arrays, meta)["e.w"]
        >>> q.mode, ggquant.dequantize(q).shape
        ('mxfp8', (2, 4, 32))
    """
    out: dict[str, Any] = {}
    for key, arr in arrays.items():
        if key.endswith((".scale", ".bias")) and key.rsplit(".", 1)[0] in arrays:
            continue
        qt = metadata.get(key + ".quant_type", metadata.get("quant_type")) if key + ".scale" in arrays else None
        if qt is None:
            out[key] = arr
            continue
        gs = metadata.get(key + ".group_size", metadata.get("group_size"))
        m, b, g = resolve(qt, None, None if gs is None else int(gs))
        out[key] = MLXQuantized(arr, arrays[key + ".scale"], arrays.get(key + ".bias"), m, b, g)
    return out


__all__ = [
    "PRESETS",
    "MLXQuantized",
    "dequantize",
    "expert_group_from_blob",
    "is_mlx_type",
    "load_expert_group",
    "pack_expert_group",
    "quant_type_name",
    "quantize",
    "quantize_experts",
    "resolve",
    "routes_to_mlx",
    "save_expert_group",
]
