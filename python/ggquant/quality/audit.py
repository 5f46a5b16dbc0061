"""``ggquant validate`` (is this quantization good enough? an audit record) and ``ggquant diff`` (what differs
between two GGUF files), as functions returning JSON-serialisable reports."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..calib_cache import write_json
from ..errors import GGQuantError
from ..fileio import read_text_file
from ..gguf import GGUFReader, GGUFSplitReader, read_gguf_split
from ..plan import tensor_nbytes
from ..quants import dequantize
from .evaluator import Evaluator
from .stats import EvalResult
from .util import read_text, sha256_file


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no inf: an exact tensor has SQNR None


def _error_stats(ref: np.ndarray, other: np.ndarray) -> dict[str, float | None]:
    r = ref.astype(np.float64).reshape(-1)
    d = other.astype(np.float64).reshape(-1) - r
    noise, signal = float((d * d).sum()), float((r * r).sum())
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    return {"mse": noise / max(len(d), 1), "sqnr_db": _finite(sqnr), "max_abs_err": float(np.abs(d).max()) if len(d) else 0.0}


def _shard_paths(r: GGUFReader | GGUFSplitReader) -> list[str]:
    return [x.path for x in r.readers] if isinstance(r, GGUFSplitReader) else [r.path]


def _hashes(path: str | os.PathLike[str]) -> dict[str, str]:
    """SHA-256 of a file, of every shard of a split GGUF, or of every weight/config file of a model directory."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".safetensors", ".json", ".bin", ".model"))
    elif p.suffix == ".gguf":
        r = read_gguf_split(p)
        files = [Path(x) for x in _shard_paths(r)]
        r.close()
    else:
        files = [p]
    return {f.name: sha256_file(f) for f in files}


@dataclass
class ValidationReport:
    """The outcome of :func:`validate`.

    Attributes:
        result: the model-level statistics.
        tensors: per tensor: ``type``, ``bytes``, ``mse``, ``sqnr_db`` (None when exact), ``max_abs_err``.
        failures: one message per exceeded threshold (empty: passed).
        thresholds: the thresholds given.
        sha256: ``{"baseline": {...}, "quantized": {...}, "text": hex}``.
    """

    result: EvalResult
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    sha256: dict[str, Any] = field(default_factory=dict)
    baseline: str = ""
    quantized: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d

    def annotate_plan_report(self, path: str | os.PathLike[str]) -> None:
        """Fill the measured errors of a plan report (``ggquant convert --target-... --report``) from this
        validation of the planned file: per tensor ``measured_error`` (the MSE of its weights), and the
        model's measured KLD, ln PPL ratio and top-1 beside the planner's ``predicted_error``.

        Raises:
            GGQuantError: ``path`` is not a readable plan report, or cannot be rewritten.
        """
        p = Path(path)
        try:
            doc = json.loads(read_text_file(p, "plan report"))
        except ValueError as e:
            raise GGQuantError(f"{p}: not a plan report: {e}") from e
        if not isinstance(doc, dict) or doc.get("format") != "ggquant-plan-report" or \
                not isinstance(doc.get("tensors"), list):
            raise GGQuantError(f"{p}: not a plan report (ggquant convert --report writes one)")
        for t in doc["tensors"]:
            row = self.tensors.get(t.get("name", "")) if isinstance(t, dict) else None
            if isinstance(t, dict):
                t["measured_error"] = None if row is None else row.get("mse")
        doc["measured_error_unit"] = "mse"
        doc["measured"] = {"quantized": self.quantized, "kld_mean": self.result.kld_mean,
                           "ln_ppl_ratio": self.result.ln_ppl_ratio, "top1": self.result.top1,
                           "n_tokens": self.result.n_tokens}
        write_json(p, doc, GGQuantError, "plan report")

    def format(self) -> str:
        lines = [self.result.format()]
        if self.tensors:
            worst = sorted(self.tensors.items(), key=lambda kv: kv[1].get("sqnr_db") or math.inf)[:5]
            lines.append("  lowest SQNR: " + ", ".join(f"{k} {v['type']} {v['sqnr_db']:.1f} dB" for k, v in worst
                                                      if v.get("sqnr_db") is not None))
        lines += [f"FAIL: {f}" for f in self.failures] or (["PASS"] if self.thresholds else [])
        return "\n".join(lines)


def validate(baseline: Any, quantized: Any, text: Any, *, max_kld: float | None = None,
             max_ppl_ratio: float | None = None, ctx: int = 512, n_chunks: int | None = None,
             backend: str = "torch", progress: bool = True, imatrix: Any = None) -> ValidationReport:
    """Evaluate ``quantized`` against ``baseline`` and check thresholds; the report is an audit record.

    Args:
        baseline / quantized / text: as :class:`Evaluator` and :meth:`Evaluator.evaluate`.
        max_kld: fail when the mean KLD exceeds this.
        max_ppl_ratio: fail when PPL(Q)/PPL(base) exceeds this.
        ctx / n_chunks / backend / progress / imatrix: passed on.

    Returns:
        A :class:`ValidationReport` (``passed``, ``failures``, ``to_dict()`` for JSON).
    """
    ev = Evaluator(baseline, text, ctx=ctx, n_chunks=n_chunks, backend=backend, progress=progress)
    result, errors = ev.audit(quantized, imatrix=imatrix)
    report = ValidationReport(result, baseline=str(baseline), quantized=str(quantized))
    if isinstance(quantized, (str, os.PathLike)) and Path(quantized).suffix == ".gguf":
        rq = read_gguf_split(quantized)
        info = {t.name: (t.type.name, int(t.nbytes), t.shape) for t in rq.tensors}
        rb = read_gguf_split(baseline) if not errors and Path(str(baseline)).suffix == ".gguf" else None
        for name, (tname, nb, shape) in info.items():
            row: dict[str, Any] = {"type": tname, "bytes": nb}
            if name in errors:
                row.update({k: (_finite(v) if k == "sqnr_db" else v) for k, v in errors[name].items()})
            elif rb is not None and name in {t.name for t in rb.tensors}:
                a, b = rb.tensor(name), rq.tensor(name)
                if a.shape == b.shape:
                    row.update(_error_stats(dequantize(np.asarray(a.data), a.type, a.shape),
                                            dequantize(np.asarray(b.data), b.type, b.shape)))
            report.tensors[name] = row
        rq.close()
        if rb is not None:
            rb.close()
    else:
        types = ev.types_for(quantized, imatrix=imatrix) if not isinstance(quantized, (str, os.PathLike)) or \
            not Path(quantized).is_dir() else {}
        shapes = dict(ev._model.tensors())
        for name, t in types.items():
            row = {"type": getattr(t, "name", str(t)), "bytes": tensor_nbytes(shapes[name], t) if not isinstance(t, str) else None}
            row.update({k: (_finite(v) if k == "sqnr_db" else v) for k, v in errors.get(name, {}).items()})
            report.tensors[name] = row
    if max_kld is not None:
        report.thresholds["max_kld"] = max_kld
        if result.kld_mean > max_kld:
            report.failures.append(f"mean KLD {result.kld_mean:.6f} exceeds --max-kld {max_kld} by "
                                   f"{result.kld_mean - max_kld:.6f} ({100 * (result.kld_mean / max_kld - 1):.1f}%)")
    if max_ppl_ratio is not None:
        report.thresholds["max_ppl_ratio"] = max_ppl_ratio
        if result.ppl_ratio > max_ppl_ratio:
            report.failures.append(f"PPL ratio {result.ppl_ratio:.6f} exceeds --max-ppl-ratio {max_ppl_ratio} by "
                                   f"{result.ppl_ratio - max_ppl_ratio:.6f}")
    report.sha256["baseline"] = _hashes(baseline) if isinstance(baseline, (str, os.PathLike)) else {}
    report.sha256["quantized"] = _hashes(quantized) if isinstance(quantized, (str, os.PathLike)) and \
        Path(quantized).exists() else {}
    if isinstance(text, os.PathLike):
        report.sha256["text"] = sha256_file(text)
    elif isinstance(text, str):
        report.sha256["text"] = hashlib.sha256(read_text(text).encode()).hexdigest()
    return report


@dataclass
class DiffReport:
    """What differs between two GGUF files (or split sets).

    Attributes:
        added / removed / changed: metadata keys only in B / only in A / with different values (A, B reprs).
        tensors_added / tensors_removed: tensor names only in B / only in A.
        tensors_changed: per tensor whose type, shape or bytes differ: ``type``/``shape`` (A, B) and, when the
            shapes agree, ``mse``, ``sqnr_db`` (B against A) and ``max_abs_err`` of the dequantized values.
    """

    a: str
    b: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    tensors_added: list[str] = field(default_factory=list)
    tensors_removed: list[str] = field(default_factory=list)
    tensors_changed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed or self.tensors_added or self.tensors_removed
                    or self.tensors_changed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["identical"] = self.identical
        return d

    def format(self) -> str:
        if self.identical:
            return f"{self.a} and {self.b} are identical (metadata and tensor data)"
        out = [f"--- {self.a}", f"+++ {self.b}"]
        out += [f"+ key {k}" for k in self.added] + [f"- key {k}" for k in self.removed]
        out += [f"~ key {k}: {a} -> {b}" for k, (a, b) in self.changed.items()]
        out += [f"+ tensor {n}" for n in self.tensors_added] + [f"- tensor {n}" for n in self.tensors_removed]
        for n, d in self.tensors_changed.items():
            ty = f"{d['type'][0]} -> {d['type'][1]}" if d["type"][0] != d["type"][1] else d["type"][0]
            err = (f", SQNR {d['sqnr_db']:.1f} dB, max abs err {d['max_abs_err']:.3g}" if d.get("sqnr_db") is not None
                   else (", values equal" if "mse" in d else ""))
            shape = f", shape {d['shape'][0]} -> {d['shape'][1]}" if d["shape"][0] != d["shape"][1] else ""
            out.append(f"~ tensor {n}: {ty}{shape}{err}")
        return "\n".join(out)


def _short(v: Any) -> str:
    s = repr(v.tolist() if isinstance(v, np.ndarray) else v)
    return s if len(s) <= 80 else s[:77] + "..."


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and bool(a == b)


_SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")


def diff_gguf(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> DiffReport:
    """Compare two GGUF files (split sets: give any shard; ``split.*`` keys are ignored).

    Args:
        a / b: the files.

    Returns:
        A :class:`DiffReport`; ``identical`` when metadata and every tensor's type, shape and bytes agree.

    Example:
        >>> print(diff_gguf("model-q4_k_m.gguf", "model-q4_k_m-again.gguf").format())  # doctest: +SKIP
    """
    ra, rb = read_gguf_split(a), read_gguf_split(b)
    try:
        rep = DiffReport(os.fspath(a), os.fspath(b))
        ka = {k: v for k, v in ra.metadata.items() if k not in _SPLIT_KEYS}
        kb = {k: v for k, v in rb.metadata.items() if k not in _SPLIT_KEYS}
        rep.added = [k for k in kb if k not in ka]
        rep.removed = [k for k in ka if k not in kb]
        rep.changed = {k: (_short(ka[k]), _short(kb[k])) for k in ka if k in kb and not _same(ka[k], kb[k])}
        ta = {t.name: t for t in ra.tensors}
        tb = {t.name: t for t in rb.tensors}
        rep.tensors_added = [n for n in tb if n not in ta]
        rep.tensors_removed = [n for n in ta if n not in tb]
        for n, x in ta.items():
            y = tb.get(n)
            if y is None:
                continue
            if x.type == y.type and x.shape == y.shape and np.array_equal(np.asarray(x.data).view(np.uint8),
                                                                         np.asarray(y.data).view(np.uint8)):
                continue
            row: dict[str, Any] = {"type": (x.type.name, y.type.name), "shape": (list(x.shape), list(y.shape))}
            if x.shape == y.shape:
                try:
                    row.update(_error_stats(dequantize(np.asarray(x.data), x.type, x.shape),
                                            dequantize(np.asarray(y.data), y.type, y.shape)))
                except GGQuantError as e:  # a type this build cannot decode: report the type change only
                    row["error"] = str(e)
            rep.tensors_changed[n] = row
        return rep
    finally:
        ra.close()
        rb.close()


__all__ = ["ValidationReport", "DiffReport", "validate", "diff_gguf"]
