"""The precision analyzer: for every tensor of a model and every candidate type, its size and its error.

:func:`profile` reads a Hugging Face checkpoint tensor by tensor, names the tensors as the GGUF
converter does, quantizes each one (a strided sample of its rows) to every candidate ggml type and
measures the *weight error as the model sees it*::

    wimx = Σ_rows Σ_j v_j (w − ŵ)_j²  /  Σ_rows Σ_j v_j w_j²       (v: importance matrix, per column)
    wmse = Σ (w − ŵ)² / Σ w²                                        (no importance matrix)

a relative error, so tensors of different sizes and scales compare. With ``kld=True`` it also measures
each tensor's *sensitivity*: the KLD of the model's output on calibration text when only that tensor
(``kld="layer"``: that layer's tensors) is quantized to a probe type, divided by the tensor's weight
error at that type. A candidate's ``error`` is then its weight error times the sensitivity, a
predicted KLD contribution that adds up over tensors; :func:`ggquant.budget.plan_for_budget`
minimises that sum under a byte budget.

Every measurement is stored in the calibration cache (:mod:`ggquant.calib_cache`), so a second
profile of the same model, text and imatrix reads it instead of quantizing, and an interrupted profile
resumes where it stopped.

Example:
    >>> import ggquant
    >>> p = ggquant.profile("path/to/model", types=["q3_K", "q4_K", "q6_K"])   # doctest: +SKIP
    >>> print(p.table())                                                       # doctest: +SKIP
    >>> p.save("profile.json")                                                 # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .calib_cache import (CalibCache, RecordKey, ggquant_version, model_files, model_sha256, read_json, sha256_bytes,
                          write_json)
from .errors import GGQuantError, UnsupportedTypeError
from .convert import GGUFSource, convert, hf_source
from .convert import open_model as open_hf_model
from .convert.core import imatrix_weights
from .hf.checkpoint import to_compute_dtype
from .imatrix import imatrix_for, load_imatrix
from .progress import Progress
from .plan import ModelInfo, PlannedTensor, allows_quantization, tensor_nbytes, tensor_requires_imatrix
from .quality import Evaluator
from .qtypes import GGMLType, all_types, resolve_type, type_info
from .quants import dequantize, quantize

_FORMAT = "ggquant-profile"
_SCHEMA = 1
# types ggml has but llama.cpp never stores weights in (dot-product partners only)
_NOT_WEIGHT_TYPES = (GGMLType.Q8_1, GGMLType.Q8_K)
_FLOAT_CANDIDATES = (GGMLType.F16, GGMLType.BF16)
DEFAULT_PROBE = "q3_K"


class ProfileError(GGQuantError):
    """A profile that does not fit the request: another model, a foreign or malformed file, a bad type list."""


@dataclass(frozen=True)
class Candidate:
    """One (type, size, error) point of a tensor.

    Attributes:
        type: the ggml type.
        nbytes: bytes of the tensor in that type.
        weight_error: relative weight error (``wimx`` or ``wmse``, see the module docs).
        error: the error the planner minimises: ``weight_error × sensitivity`` (a predicted KLD
            contribution) when the profile has sensitivities, else ``weight_error``.
    """

    type: GGMLType
    nbytes: int
    weight_error: float
    error: float


@dataclass
class TensorProfile:
    """One tensor of the model.

    Attributes:
        name / shape: GGUF name, NumPy-order shape.
        quantizable: whether llama.cpp quantizes it at all (1-D tensors and norms stay F32).
        candidates: the measured points, fewest bytes first (empty if not quantizable).
        sensitivity: KLD per unit weight error (None without ``kld``).
        probe_kld: the measured KLD behind ``sensitivity`` (of the tensor's group for ``kld="layer"``).
    """

    name: str
    shape: tuple[int, ...]
    quantizable: bool
    candidates: list[Candidate] = field(default_factory=list)
    sensitivity: float | None = None
    probe_kld: float | None = None

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def layer(self) -> int | None:
        m = re.match(r"blk\.(\d+)\.", self.name)
        return int(m.group(1)) if m else None

    @property
    def role(self) -> str:
        """``attn_q``, ``ffn_down``, ``token_embd``, ... (the name without layer and ``.weight``)."""
        return re.sub(r"^blk\.\d+\.", "", self.name).removesuffix(".weight")

    def candidate(self, t: GGMLType | str) -> Candidate:
        tt = resolve_type(t)
        for c in self.candidates:
            if c.type == tt:
                return c
        raise KeyError(f"{self.name}: no candidate {type_info(tt).name}")


@dataclass
class Profile:
    """Per-tensor candidate points of a model: what :func:`profile` returns and :func:`load_profile` reads.

    Attributes:
        model_sha: SHA-256 of the model files (config, tokenizer, weights).
        model_dir: where the model was read from.
        model_info: architecture and counts the llama.cpp presets depend on.
        header_bytes: size of the GGUF header the converter writes (type-independent).
        tensors: every tensor in converter order (non-quantizable ones included).
        metric: ``"wimx"`` (imatrix-weighted) or ``"wmse"``.
        kld: ``"tensor"``/``"layer"`` when sensitivities were measured, else None.
        probe_type: the type the sensitivities were measured at.
        calib_sha / imatrix_sha: SHA-256 of the calibration text / importance matrix ("" if none).
        version: ggquant version that measured it.
        seconds: wall time of the profile; cached: how many measurements came from the cache.
    """

    model_sha: str
    model_dir: str
    model_info: ModelInfo
    header_bytes: int
    tensors: list[TensorProfile]
    metric: str
    kld: str | None = None
    probe_type: str | None = None
    calib_sha: str = ""
    imatrix_sha: str = ""
    version: str = ""
    seconds: float = 0.0
    cached: int = 0
    measured: int = 0

    def tensor(self, name: str) -> TensorProfile:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def error_unit(self) -> str:
        return "KLD" if self.kld else self.metric

    def to_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data (see :meth:`save`)."""
        mi = self.model_info
        return {
            "format": _FORMAT, "schema": _SCHEMA, "model_sha": self.model_sha, "model_dir": self.model_dir,
            "model_info": {"arch": mi.arch, "n_layer": mi.n_layer, "n_head": mi.n_head, "n_head_kv": mi.n_head_kv,
                           "n_expert": mi.n_expert},
            "header_bytes": self.header_bytes, "metric": self.metric, "kld": self.kld, "probe_type": self.probe_type,
            "calib_sha": self.calib_sha, "imatrix_sha": self.imatrix_sha, "version": self.version,
            "error_unit": self.error_unit,
            "tensors": [{"name": t.name, "shape": list(t.shape), "quantizable": t.quantizable,
                         "sensitivity": t.sensitivity, "probe_kld": t.probe_kld,
                         "candidates": [{"type": type_info(c.type).name, "bytes": c.nbytes,
                                         "weight_error": c.weight_error, "error": c.error} for c in t.candidates]}
                        for t in self.tensors],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the profile as JSON (atomically), for :func:`load_profile` and other programs."""
        write_json(path, self.to_dict(), ProfileError, "profile")

    def table(self, types: Sequence[GGMLType | str] | None = None) -> str:
        """A readable table: one row per quantizable tensor, the error of each type (``-``: not a candidate)."""
        q = [t for t in self.tensors if t.quantizable]
        cols = [resolve_type(x) for x in types] if types else sorted(
            {c.type for t in q for c in t.candidates}, key=lambda t: type_info(t).bits_per_weight)
        w = max([len(t.name) for t in q] + [6])
        head = f"{'tensor':<{w}} {'params':>10} {'sens.':>9} " + " ".join(f"{type_info(c).name:>9}" for c in cols)
        lines = [f"errors in {self.error_unit}" + (f" (sensitivity measured at {self.probe_type}, per {self.kld})"
                                                     if self.kld else ""), head]
        for t in q:
            have = {c.type: c.error for c in t.candidates}
            sens = f"{t.sensitivity:9.3g}" if t.sensitivity is not None else f"{'-':>9}"
            cells = " ".join(f"{have[c]:9.2e}" if c in have else f"{'-':>9}" for c in cols)
            lines.append(f"{t.name:<{w}} {t.n_elements:>10,} {sens} {cells}")
        lines.append(f"{len(q)} quantizable tensors of {len(self.tensors)}; {self.measured} measured, "
                     f"{self.cached} from the cache, {self.seconds:.1f} s")
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike[str], type: GGMLType | str | None = None) -> None:
        """Write an SVG heat map, layers × tensor roles, coloured by log10 of the error at ``type``
        (default: the probe type, else q4_K), or by sensitivity when the profile has sensitivities."""
        at = resolve_type(type or self.probe_type or "q4_K")
        q = [t for t in self.tensors if t.quantizable]
        roles = sorted({t.role for t in q if t.layer is not None})
        extra = [t for t in q if t.layer is None]
        n_layer = max([t.layer for t in q if t.layer is not None], default=-1) + 1

        def value(t: TensorProfile) -> float | None:
            if self.kld and t.sensitivity is not None:
                return t.sensitivity
            try:
                return t.candidate(at).error
            except KeyError:
                return None

        vals = [v for t in q if (v := value(t)) is not None and v > 0]
        lo, hi = (math.log10(min(vals)), math.log10(max(vals))) if vals else (0.0, 1.0)
        cw, ch, left, top = 28, 22, 150, 40
        width, height = left + cw * max(n_layer, 1) + 40, top + ch * (len(roles) + len(extra)) + 60
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
               f'font-size="11">',
               f'<text x="4" y="16">{"sensitivity (KLD per unit weight error)" if self.kld else "error at " + type_info(at).name}'
               f', log colour scale {lo:.2f} .. {hi:.2f}</text>']

        def cell(x: int, y: int, t: TensorProfile) -> None:
            v = value(t)
            if v is None or v <= 0:
                colour = "#dddddd"
            else:
                f = 0.5 if hi == lo else (math.log10(v) - lo) / (hi - lo)
                colour = f"rgb({int(255 * f)},{int(80 + 80 * (1 - abs(2 * f - 1)))},{int(255 * (1 - f))})"
            out.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="{colour}">'
                       f'<title>{t.name}: {v if v is not None else "n/a"}</title></rect>')

        for i in range(n_layer):
            out.append(f'<text x="{left + i * cw + 4}" y="{top - 4}">{i}</text>')
        for r, role in enumerate(roles):
            y = top + r * ch
            out.append(f'<text x="4" y="{y + 15}">{role}</text>')
            for t in q:
                if t.role == role and t.layer is not None:
                    cell(left + t.layer * cw, y, t)
        for k, t in enumerate(extra):
            y = top + (len(roles) + k) * ch
            out.append(f'<text x="4" y="{y + 15}">{t.role}</text>')
            cell(left, y, t)
        out.append("</svg>")
        try:
            Path(path).write_text("\n".join(out), encoding="utf-8")
        except OSError as e:
            raise ProfileError(f"{path}: cannot write the plot: {e}") from e


def load_profile(path: str | os.PathLike[str]) -> Profile:
    """Read a profile written by :meth:`Profile.save`.

    Raises:
        ProfileError: the file is not a ggquant profile or is malformed (the message says what).
    """
    p = Path(path)
    d = read_json(p, _FORMAT, _SCHEMA, ProfileError, "ggquant profile")
    try:
        mi = ModelInfo(**d["model_info"])
        tensors = [TensorProfile(t["name"], tuple(int(s) for s in t["shape"]), bool(t["quantizable"]),
                                 [Candidate(resolve_type(c["type"]), int(c["bytes"]), float(c["weight_error"]),
                                            float(c["error"])) for c in t["candidates"]],
                                 t.get("sensitivity"), t.get("probe_kld")) for t in d["tensors"]]
        return Profile(str(d["model_sha"]), str(d.get("model_dir", "")), mi, int(d["header_bytes"]), tensors,
                       str(d["metric"]), d.get("kld"), d.get("probe_type"), str(d.get("calib_sha", "")),
                       str(d.get("imatrix_sha", "")), str(d.get("version", "")))
    except (KeyError, TypeError, ValueError) as e:
        raise ProfileError(f"{p}: malformed profile ({e!r})") from None


def candidate_types(types: Iterable[GGMLType | str] | None = None, *, has_imatrix: bool = False) -> list[GGMLType]:
    """The candidate types: ``types`` checked, or by default every type ggquant quantizes that llama.cpp
    stores weights in (from the type table, so new quantizers join automatically) plus F16 and BF16.

    Types that need an importance matrix are left out of the default without one.

    Raises:
        ProfileError: an unknown type, or one ggquant cannot quantize (the message lists the valid ones).

    Example:
        >>> [type_info(t).name for t in candidate_types(["q4_K", "Q6_K"])]
        ['q4_K', 'q6_K']
    """
    allowed = [i.type for i in all_types() if i.can_quantize and i.type not in _NOT_WEIGHT_TYPES
               and (i.is_quantized or i.type in _FLOAT_CANDIDATES + (GGMLType.F32,))]
    if types is None:
        return [t for t in allowed if t != GGMLType.F32 and (has_imatrix or not type_info(t).requires_imatrix)]
    out: list[GGMLType] = []
    valid = ", ".join(type_info(t).name for t in allowed)
    for x in types:
        try:
            t = resolve_type(x)
        except UnsupportedTypeError:
            raise ProfileError(f"unknown type {x!r} in the candidate types; valid: {valid}") from None
        if t not in allowed:
            raise ProfileError(f"type {type_info(t).name} cannot be a candidate (ggquant cannot quantize it or "
                               f"llama.cpp does not store weights in it); valid: {valid}")
        if t not in out:
            out.append(t)
    if not out:
        raise ProfileError(f"no candidate types given; valid: {valid}")
    return out


# ---------------------------------------------------------------------------------------------
# reading the model


@dataclass
class ModelTensors:
    """A model directory opened as the converter sees it (:func:`ggquant.convert.hf_source`):
    GGUF-named tensors, loaded on demand."""

    model_dir: Path
    source: GGUFSource

    @property
    def model_info(self) -> ModelInfo:
        return self.source.model

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.source.tensors]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(t.shape) for t in self.source.tensors]

    def rows(self, i: int, max_rows: int | None = None) -> list[np.ndarray]:
        """Tensor ``i`` as float32 2-D slices (one per expert), each a strided sample of at most
        ``max_rows`` rows (all rows if None), deterministic per tensor name."""
        ot = self.source.tensors[i]
        arrays: list[tuple[np.ndarray, str]] = []
        for part in ot.parts:
            arr, stored = part()
            if isinstance(stored, GGMLType):  # raw ggml blocks (see convert.stream.run_pass): their values
                shape = ot.shape if len(ot.parts) == 1 else ot.shape[1:]
                arr, stored = dequantize(np.ascontiguousarray(arr).reshape(-1).view(np.uint8), stored, shape), "F32"
            dtype: str = stored
            a = np.asarray(arr)
            arrays.extend([(a[k], dtype) for k in range(a.shape[0])] if a.ndim == 3
                          else [(a.reshape(-1, a.shape[-1]), dtype)])
            del arr
        out = []
        for a, dtype in arrays:
            cap = None if max_rows is None else max(16, max_rows // len(arrays))
            if cap is not None and a.shape[0] > cap:
                stride = a.shape[0] / cap
                off = (zlib.crc32(ot.name.encode()) % 997) / 997.0
                idx = np.minimum((np.arange(cap) * stride + off * stride).astype(np.int64), a.shape[0] - 1)
                a = a[idx]
            out.append(np.ascontiguousarray(to_compute_dtype(np.ascontiguousarray(a), dtype), dtype=np.float32))
        if len(ot.shape) == 3 and len(out) != ot.shape[0]:
            raise GGQuantError(f"{ot.name}: expected {ot.shape[0]} expert slices, got {len(out)}")
        return out

    def close(self) -> None:
        self.source.close()


def open_model(model_dir: str | os.PathLike[str]) -> ModelTensors:
    """Open a Hugging Face model directory and list its tensors with GGUF names and shapes."""
    d = Path(model_dir)
    return ModelTensors(d, hf_source(open_hf_model(d)))


def relative_error(x: np.ndarray, y: np.ndarray, v: np.ndarray | None) -> tuple[float, float]:
    """(Σ v (x−y)², Σ v x²) over all rows, v per column (1 if None), in float64."""
    e = (x.astype(np.float64) - y) ** 2
    s = x.astype(np.float64) ** 2
    if v is None:
        return float(e.sum()), float(s.sum())
    vv = np.maximum(v.astype(np.float64), 0.0)
    return float(e.sum(axis=0) @ vv), float(s.sum(axis=0) @ vv)


def weight_errors(slices: Sequence[np.ndarray], types: Sequence[GGMLType],
                  imatrix: np.ndarray | None = None) -> dict[GGMLType, float]:
    """The relative weight error of each type for one tensor given as 2-D slices (experts) of rows.

    Args:
        slices: float32 arrays ``(rows, n_cols)``, one per expert (one for a dense tensor).
        types: the types to measure (their block size must divide ``n_cols``).
        imatrix: per-column importance, ``(n_cols,)`` or ``(n_slices, n_cols)``; also passed to the quantizer.

    Returns:
        type -> ``Σ v (w−ŵ)² / Σ v w²`` (0 for a tensor of zeros).

    Example:
        >>> x = np.random.default_rng(0).standard_normal((4, 256)).astype(np.float32)
        >>> e = weight_errors([x], [GGMLType.Q4_K, GGMLType.Q8_0])
        >>> e[GGMLType.Q8_0] < e[GGMLType.Q4_K] < 0.02
        True
    """
    out: dict[GGMLType, float] = {}
    im = None if imatrix is None else np.asarray(imatrix, np.float32).reshape(len(slices), -1)
    for t in types:
        num = den = 0.0
        for k, x in enumerate(slices):
            v = None if im is None else im[k]
            y = dequantize(quantize(x, t, imatrix=v), t, x.shape)
            a, b = relative_error(x, y, v)
            num, den = num + a, den + b
        out[t] = num / den if den > 0 else 0.0
    return out


# ---------------------------------------------------------------------------------------------


def _read_calib(calib: str | os.PathLike[str] | None) -> str | None:
    if calib is None:
        return None
    p = Path(calib)
    if isinstance(calib, os.PathLike) or (len(str(calib)) < 4096 and "\n" not in str(calib) and p.exists()):
        try:
            return p.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            raise GGQuantError(f"{p}: cannot read the calibration text: {e}") from e
    return str(calib)


def _imatrix_arrays(imatrix: str | os.PathLike[str] | Mapping[str, Any] | None) -> tuple[dict[str, np.ndarray] | None, str]:
    if imatrix is None:
        return None, ""
    if isinstance(imatrix, (str, os.PathLike)):
        try:
            sha = sha256_bytes(Path(imatrix).read_bytes())
        except OSError as e:
            raise GGQuantError(f"{imatrix}: cannot read the imatrix: {e}") from e
        return load_imatrix(imatrix), sha
    arrays = {str(k): np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in dict(imatrix).items()}
    h = b"".join(k.encode() + b"\0" + arrays[k].tobytes() for k in sorted(arrays))
    return arrays, sha256_bytes(h)


def _weights_for(im: Mapping[str, np.ndarray] | None, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    # the weights the converter quantizes this tensor with (a 256-block type stands for any quantized one)
    w = imatrix_weights(PlannedTensor(name, shape, GGMLType.Q8_0, 0), im)
    return None if w is None else imatrix_for({name: w}, name, shape)


def _probe_for(tp: TensorProfile, probe: GGMLType) -> GGMLType:
    # the probe, or the candidate closest to it in bits per weight when its block does not fit
    if any(c.type == probe for c in tp.candidates):
        return probe
    bpw = type_info(probe).bits_per_weight
    return min(tp.candidates, key=lambda c: abs(8 * c.nbytes / tp.n_elements - bpw)).type


def _groups(tensors: Sequence[TensorProfile], mode: str) -> list[tuple[str, list[TensorProfile]]]:
    if mode == "tensor":
        return [(t.name, [t]) for t in tensors]
    groups: dict[str, list[TensorProfile]] = {}
    for t in tensors:
        groups.setdefault(f"blk.{t.layer}" if t.layer is not None else t.name, []).append(t)
    return list(groups.items())


def profile(
    model: str | os.PathLike[str],
    *,
    calib: str | os.PathLike[str] | None = None,
    imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    types: Iterable[GGMLType | str] | None = None,
    kld: bool | str = False,
    probe_type: GGMLType | str = DEFAULT_PROBE,
    max_rows: int | None = 1024,
    ctx: int = 512,
    n_chunks: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    evaluator: Any = None,
    quiet: bool = False,
) -> Profile:
    """Measure every quantizable tensor of a model at every candidate type.

    Args:
        model: a Hugging Face model directory (config.json, safetensors or .bin weights, tokenizer).
        calib: calibration text for ``kld`` (a file path, or the text itself).
        imatrix: importance matrix (a llama-imatrix file or ``{GGUF name: weights}``); it weights the
            error and is passed to the quantizers, as llama-quantize does.
        types: candidate types (default: :func:`candidate_types`). Types whose block does not divide
            a tensor's row length are skipped for that tensor (llama.cpp's row-length rule).
        kld: measure sensitivities: ``True``/``"tensor"`` quantizes one tensor at a time, ``"layer"``
            one layer's tensors at a time (faster). Needs ``calib`` and the ``torch`` extra.
        probe_type: the type the sensitivities are measured at.
        max_rows: rows sampled per tensor for the weight error (None: all rows).
        ctx / n_chunks: context length and chunk count of the KLD evaluation.
        cache / cache_dir: use the calibration cache (:mod:`ggquant.calib_cache`) and where it lives.
        evaluator: an already built ``ggquant.quality.Evaluator`` of this model on ``calib`` (else built here).
        quiet: no progress on stderr.

    Returns:
        A :class:`Profile`.

    Raises:
        ProfileError: unknown types, ``kld`` without calibration text.
        GGQuantError: unreadable model, imatrix or cache (the message names the file).

    Example:
        >>> p = profile("path/to/model", imatrix="imatrix.gguf", types=["q4_K", "q6_K"])  # doctest: +SKIP
        >>> p.tensor("blk.0.ffn_down.weight").candidate("q4_K").weight_error               # doctest: +SKIP
        0.0123
    """
    t0 = time.perf_counter()
    modes: dict[bool | str, str | None] = {True: "tensor", False: None, "tensor": "tensor", "layer": "layer"}
    mode = modes.get(kld, "?")
    if mode == "?":
        raise ProfileError(f"kld must be True, False, 'tensor' or 'layer', got {kld!r}")
    text = _read_calib(calib)
    if mode and not text:
        raise ProfileError("kld sensitivities need calibration text (calib=, CLI -f FILE)")
    im, im_sha = _imatrix_arrays(imatrix)
    cands = candidate_types(types, has_imatrix=im is not None)
    probe = resolve_type(probe_type)
    mt = open_model(model)
    db = CalibCache(cache_dir) if cache else None
    try:
        model_sha = model_sha256(model_files(mt.model_dir), db)
        metric = "wimx" if im is not None else "wmse"
        sampled = f"{metric}:r{max_rows}" if max_rows else f"{metric}:all"  # the row sample changes the numbers
        header = _header_bytes(mt, model_sha, db)
        tensors: list[TensorProfile] = []
        jobs: list[tuple[int, TensorProfile, list[GGMLType], np.ndarray | None]] = []
        for i, (name, shape) in enumerate(zip(mt.names, mt.shapes)):
            tp = TensorProfile(name, shape, allows_quantization(name, shape))
            tensors.append(tp)
            if not tp.quantizable:
                continue
            weights = _weights_for(im, name, shape)
            ok = [t for t in cands if shape[-1] % type_info(t).block_size == 0 and (weights is not None or not (
                type_info(t).requires_imatrix or tensor_requires_imatrix(name, t)))]
            if not ok:
                raise ProfileError(f"{name}: none of the candidate types fits its row length {shape[-1]} "
                                   f"({', '.join(type_info(t).name for t in cands)})")
            jobs.append((i, tp, ok, weights))
        keyed = {(i, t): RecordKey(model_sha, mt.names[i], type_info(t).name, sampled, "", im_sha)
                 for i, _, ok, _ in jobs for t in ok}
        have = db.get_many(keyed.values()) if db is not None else {}
        n_cached = len(have)
        todo = [j for j in jobs if any(keyed[(j[0], t)] not in have for t in j[2])]
        prog = Progress(len(todo), quiet, desc="weight error", unit="tensor")
        try:
            for i, tp, ok, weights in todo:
                prog.start(tp.name)
                errs = weight_errors(mt.rows(i, max_rows), ok, weights)
                recs = [(keyed[(i, t)], tensor_nbytes(tp.shape, t), e) for t, e in errs.items()]
                for k, b, e in recs:
                    have[k] = (b, e)
                if db is not None:
                    db.put_many(recs)  # one tensor at a time: an interrupted profile resumes here
                prog.update()
        finally:
            prog.close()
        for i, tp, ok, _ in jobs:
            pts = [Candidate(t, have[keyed[(i, t)]][0], have[keyed[(i, t)]][1], have[keyed[(i, t)]][1]) for t in ok]
            tp.candidates = sorted(pts, key=lambda c: (c.nbytes, c.weight_error))
        prof = Profile(model_sha, str(mt.model_dir), mt.model_info, header, tensors, metric, None, None, "", im_sha,
                       ggquant_version(), 0.0, n_cached, len(keyed) - n_cached)
        if mode:
            assert text is not None
            calib_sha = sha256_bytes(f"{text}\0ctx={ctx}\0chunks={n_chunks}".encode())
            _measure_sensitivity(prof, mode, probe, text, calib_sha, imatrix, im_sha, ctx, n_chunks, db,
                                 evaluator, quiet)
    finally:
        mt.close()
        if db is not None:
            db.close()
    prof.seconds = time.perf_counter() - t0
    return prof


def _header_bytes(mt: ModelTensors, model_sha: str, db: CalibCache | None) -> int:
    key = RecordKey(model_sha, "<gguf header>", "", "header_bytes")
    if db is not None:
        got = db.get_many([key])
        if key in got:
            return got[key][0]
    hb = int(convert(mt.model_dir, None, "Q8_0", dry_run=True, quiet=True).header_bytes)
    if db is not None:
        db.put_many([(key, hb, 0.0)])
    return hb


def _measure_sensitivity(prof: Profile, mode: str, probe: GGMLType, text: str, calib_sha: str, imatrix: Any,
                         im_sha: str, ctx: int, n_chunks: int | None, db: CalibCache | None, evaluator: Any,
                         quiet: bool) -> None:
    q = [t for t in prof.tensors if t.quantizable]
    groups = _groups(q, mode)
    metric = f"kld:{mode}"
    keys = {g: RecordKey(prof.model_sha, g, type_info(probe).name, metric, calib_sha, im_sha) for g, _ in groups}
    have = db.get_many(keys.values()) if db is not None else {}
    todo = [(g, ts) for g, ts in groups if keys[g] not in have]
    if todo and evaluator is None:
        evaluator = _make_evaluator(prof.model_dir, text, ctx, n_chunks, quiet)
    prog = Progress(len(todo), quiet, desc="KLD sensitivity", unit="group")
    try:
        for g, ts in todo:
            prog.start(g)
            mapping = {t.name: _probe_for(t, probe) for t in ts}
            r = evaluator.evaluate(mapping, imatrix=imatrix)
            have[keys[g]] = (0, max(float(r.kld_mean), 0.0))
            if db is not None:
                db.put_many([(keys[g], 0, have[keys[g]][1])])
            prog.update()
    finally:
        prog.close()
    prof.cached += len(groups) - len(todo)
    prof.measured += len(todo)
    for g, ts in groups:
        kld_g = have[keys[g]][1]
        werr = sum(t.candidate(_probe_for(t, probe)).weight_error for t in ts)
        sens = kld_g / werr if werr > 0 else 0.0
        for t in ts:
            t.sensitivity, t.probe_kld = sens, kld_g
            t.candidates = [Candidate(c.type, c.nbytes, c.weight_error, c.weight_error * sens) for c in t.candidates]
    prof.kld, prof.probe_type, prof.calib_sha = mode, type_info(probe).name, calib_sha


def _make_evaluator(model_dir: str, text: str, ctx: int, n_chunks: int | None, quiet: bool) -> Any:
    return Evaluator(model_dir, text, ctx=ctx, n_chunks=n_chunks, progress=not quiet)


__all__ = ["Candidate", "ModelTensors", "Profile", "ProfileError", "TensorProfile", "candidate_types",
           "load_profile", "open_model", "profile", "relative_error", "weight_errors"]
