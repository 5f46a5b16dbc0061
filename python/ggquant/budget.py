"""Plan a quantization to a budget: per-tensor types that minimise the predicted error for a size.

:func:`plan_for_budget` takes the candidate (bytes, error) points of every tensor
(:func:`ggquant.precision.profile`) and picks one type per tensor:

1. each tensor's points are reduced to their lower convex hull in (bytes, error);
2. a Lagrange multiplier λ is found by bisection (over the hull slopes, where the choice changes) so
   that the tensors' choices ``argmin error + λ·bytes`` fit the budget; a choice made this way is
   optimal for its own byte total;
3. the bytes left over are filled greedily with the upgrades (to any candidate) of best
   error-per-byte that still fit.

The byte total is exact (the GGUF header plus every tensor padded to the 32-byte alignment, as the
converter writes it) and never above the budget. llama.cpp's fixed rules stay: tensors it never
quantizes (1-D tensors, norms, routers) keep F32, types whose block does not divide a row are not
candidates, and ``tensor_types`` / ``token_embedding_type`` / ``output_tensor_type`` overrides pin
their tensors. A quality target (``max_kld``) picks the smallest plan whose predicted KLD is below it;
``max_tensor_error`` picks for each tensor the smallest type whose error is below the threshold.

Example:
    >>> from ggquant.budget import solve
    >>> solve([[(10, 1.0), (20, 0.2)], [(10, 1.0), (20, 0.5)]], 30)   # the bigger gain gets the bytes
    [1, 0]
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .calib_cache import CalibCache, model_files, model_sha256, write_json
from .convert import ConversionResult, convert
from .errors import GGQuantError
from .plan import Plan, parse_tensor_types, plan_quantization
from .precision import Profile, ProfileError, load_profile, profile
from .qtypes import GGMLType, type_info

_ALIGN = 32
_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "KIB": 1024, "M": 1000**2, "MB": 1000**2, "MIB": 1024**2,
          "G": 1000**3, "GB": 1000**3, "GIB": 1024**3, "T": 1000**4, "TB": 1000**4, "TIB": 1024**4}


class BudgetError(GGQuantError):
    """A budget that cannot be met (below the smallest or above the largest possible file) or is malformed."""


def parse_size(text: str | int) -> int:
    """Bytes of a size such as ``"3.5G"``, ``"900MiB"`` or ``1234`` (K/M/G/T decimal, KiB/MiB/GiB binary).

    Example:
        >>> parse_size("1.5G"), parse_size("2MiB"), parse_size(77)
        (1500000000, 2097152, 77)
    """
    if isinstance(text, int):
        n = text
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        if not m or m.group(2).upper() not in _UNITS:
            raise BudgetError(f"invalid size {text!r}: expected a number with an optional unit "
                              f"(K, M, G, T decimal; KiB, MiB, GiB, TiB binary), e.g. 3.5G")
        n = int(round(float(m.group(1)) * _UNITS[m.group(2).upper()]))
    if n <= 0:
        raise BudgetError(f"invalid size {text!r}: must be positive")
    return n


def _fmt_bytes(n: float) -> str:
    for unit, s in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= s:
            return f"{n / s:.3f} {unit} ({int(n):,} bytes)"
    return f"{int(n):,} bytes"


# ---------------------------------------------------------------------------------------------
# the solver, on plain (cost, error) lists


def lower_hull(points: Sequence[tuple[int, float]]) -> list[int]:
    """Indices of the lower convex hull of (cost, error) points, cheapest first, error strictly falling.

    Points that cost more without lowering the error, and points above the segment joining their
    neighbours, are dropped.

    Example:
        >>> lower_hull([(10, 1.0), (20, 0.9), (30, 0.1), (15, 2.0)])
        [0, 2]
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front: list[int] = []
    for i in order:  # Pareto front: each kept point strictly better than every cheaper one
        if front and (points[i][0] == points[front[-1]][0] or points[i][1] >= points[front[-1]][1]):
            continue
        front.append(i)
    hull: list[int] = []
    for i in front:
        while len(hull) >= 2:
            (c0, e0), (c1, e1), (c2, e2) = points[hull[-2]], points[hull[-1]], points[i]
            if (c1 - c0) * (e2 - e0) - (e1 - e0) * (c2 - c0) <= 0:  # middle point on or above the chord
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


@dataclass
class Solution:
    """What :func:`solve_detailed` found: a choice per item, its cost and error, and the multiplier."""

    choice: list[int]
    cost: int
    error: float
    lam: float
    greedy_steps: int = 0


def _pick(items: Sequence[Sequence[tuple[int, float]]], hulls: list[list[int]], lam: float) -> list[int]:
    # per item the hull point minimising error + λ·cost (ties: the cheaper one)
    out = []
    for pts, h in zip(items, hulls):
        best = h[0]
        for j in h[1:]:
            if pts[j][1] + lam * pts[j][0] < pts[best][1] + lam * pts[best][0] - 1e-18 * max(1.0, abs(pts[best][1])):
                best = j
        out.append(best)
    return out


def solve_detailed(items: Sequence[Sequence[tuple[int, float]]], budget: int) -> Solution:
    """Choose one (cost, error) point per item minimising the total error with total cost <= ``budget``.

    Args:
        items: per item its candidate points (integer cost, error >= 0).
        budget: the most the chosen costs may add up to.

    Returns:
        A :class:`Solution`.

    Raises:
        BudgetError: the budget is below the cheapest choice.
    """
    hulls = [lower_hull(p) for p in items]

    def cost(ch: Sequence[int]) -> int:
        return sum(items[i][j][0] for i, j in enumerate(ch))

    def error(ch: Sequence[int]) -> float:
        return math.fsum(items[i][j][1] for i, j in enumerate(ch))

    cheapest = [h[0] for h in hulls]
    if cost(cheapest) > budget:
        raise BudgetError(f"budget {budget:,} is below the cheapest choice, {cost(cheapest):,}")
    # the choice changes only at the hull slopes: bisection over them finds the smallest feasible λ
    slopes = sorted({(items[i][h[k]][1] - items[i][h[k + 1]][1]) / (items[i][h[k + 1]][0] - items[i][h[k]][0])
                     for i, h in enumerate(hulls) for k in range(len(h) - 1)})
    lams = [0.0] + slopes
    lo, hi = 0, len(lams) - 1  # invariant: lams[hi] is feasible
    if cost(_pick(items, hulls, lams[hi])) > budget:
        hi_choice = cheapest
        lam = math.inf
    else:
        while lo < hi:
            mid = (lo + hi) // 2
            if cost(_pick(items, hulls, lams[mid])) <= budget:
                hi = mid
            else:
                lo = mid + 1
        lam = lams[hi]
        hi_choice = _pick(items, hulls, lam)
    choice = list(hi_choice)
    left = budget - cost(choice)
    steps = 0
    while True:  # greedy fill: the best error-per-byte change (to any candidate) that still fits
        best: tuple[float, int, int] | None = None
        for i, pts in enumerate(items):
            c0, e0 = pts[choice[i]]
            for j, (c, e) in enumerate(pts):
                dc, de = c - c0, e0 - e
                if de <= 0 or dc > left:
                    continue
                ratio = math.inf if dc <= 0 else de / dc
                if best is None or ratio > best[0]:
                    best = (ratio, i, j)
        if best is None:
            break
        _, i, j = best
        left -= items[i][j][0] - items[i][choice[i]][0]
        choice[i] = j
        steps += 1
    return Solution(choice, cost(choice), error(choice), lam, steps)


def solve(items: Sequence[Sequence[tuple[int, float]]], budget: int) -> list[int]:
    """The chosen point index per item (see :func:`solve_detailed`)."""
    return solve_detailed(items, budget).choice


def path(items: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float, list[int]]]:
    """The Lagrangian path: (cost, error, choice) from the cheapest choice to the most accurate, each
    optimal for its own cost (every hull segment of every item applied in order of falling slope)."""
    hulls = [lower_hull(p) for p in items]
    segs = sorted(((items[i][h[k]][1] - items[i][h[k + 1]][1]) / (items[i][h[k + 1]][0] - items[i][h[k]][0]), i, k)
                  for i, h in enumerate(hulls) for k in range(len(h) - 1))
    choice = [h[0] for h in hulls]
    c = sum(items[i][j][0] for i, j in enumerate(choice))
    e = math.fsum(items[i][j][1] for i, j in enumerate(choice))
    out = [(c, e, list(choice))]
    for _, i, k in sorted(segs, key=lambda s: (-s[0], s[1], s[2])):
        a, b = hulls[i][k], hulls[i][k + 1]
        c += items[i][b][0] - items[i][a][0]
        e += items[i][b][1] - items[i][a][1]
        choice[i] = b
        out.append((c, e, list(choice)))
    return out


# ---------------------------------------------------------------------------------------------
# plans


@dataclass
class BudgetPlan(Plan):
    """A :class:`~ggquant.plan.Plan` chosen by :func:`plan_for_budget`, with what the planner predicted.

    Attributes:
        errors: tensor name -> predicted error of its chosen type (0 for tensors kept in float).
        predicted_error: the sum of ``errors`` (a predicted KLD when the profile has sensitivities).
        error_unit: ``"KLD"``, ``"wimx"`` or ``"wmse"``.
        header_bytes / file_size: the GGUF header size and the exact file size.
        target: what was asked, e.g. ``"size 3500000000"``, ``"bpw 4.5"``, ``"max_kld 0.02"``.
        budget: the byte budget the solver worked to (file bytes or weight bytes, see ``target``).
        lam: the Lagrange multiplier found.
        pinned: tensors whose type an override fixed.
        base_type: the ggml type most bytes are in (decides ``general.file_type``).
        measured: tensor name -> measured error, filled by validation (None until then).
    """

    errors: dict[str, float] = field(default_factory=dict)
    predicted_error: float = 0.0
    error_unit: str = ""
    header_bytes: int = 0
    file_size: int = 0
    target: str = ""
    budget: int = 0
    lam: float = 0.0
    pinned: list[str] = field(default_factory=list)
    base_type: str = ""
    measured: dict[str, float] | None = None

    def format(self, header_bytes: int | None = None, alignment: int = _ALIGN) -> str:
        """Per tensor: shape, type, bytes and predicted error; then the totals and the exact file size."""
        w = max([len(t.name) for t in self.tensors] + [4])
        lines = [f"{'name':<{w}}  {'shape':<16} {'type':<8} {'bytes':>12} {'pred. ' + self.error_unit:>12}"]
        for t in self.tensors:
            shape = "{" + ", ".join(str(s) for s in reversed(t.shape)) + "}"
            mark = "  (pinned)" if t.name in self.pinned else ""
            lines.append(f"{t.name:<{w}}  {shape:<16} {type_info(t.type).name:<8} {t.nbytes:>12,} "
                         f"{self.errors.get(t.name, 0.0):>12.3e}{mark}")
        counts: dict[str, int] = {}
        for t in self.tensors:
            counts[type_info(t.type).name] = counts.get(type_info(t.type).name, 0) + 1
        lines.append(f"{len(self.tensors)} tensors ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}), "
                     f"{self.bits_per_weight:.3f} bits per weight, target {self.target}")
        lines.append(f"predicted error: {self.predicted_error:.6g} {self.error_unit}")
        lines.append(f"file size: {self.file_size:,} bytes ({self.file_size / 2**20:.2f} MiB): header "
                     f"{self.header_bytes:,} + tensor data {self.tensor_data_size(alignment):,}")
        return "\n".join(lines)

    def report(self) -> dict[str, Any]:
        """The JSON report of the plan: each tensor's type, bytes, predicted and (if validated) measured error."""
        return {
            "format": "ggquant-plan-report", "target": self.target, "budget": self.budget,
            "file_size": self.file_size, "header_bytes": self.header_bytes, "bits_per_weight": self.bits_per_weight,
            "error_unit": self.error_unit, "predicted_error": self.predicted_error, "lambda": self.lam,
            "file_type": self.file_type,
            "tensors": [{"name": t.name, "shape": list(t.shape), "type": type_info(t.type).name, "bytes": t.nbytes,
                         "pinned": t.name in self.pinned, "predicted_error": self.errors.get(t.name, 0.0),
                         "measured_error": None if self.measured is None else self.measured.get(t.name)}
                        for t in self.tensors],
        }

    def save_report(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`report` as JSON."""
        write_json(path, self.report(), GGQuantError, "plan report")


def _padded(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _pinned_names(names: Iterable[str], tensor_types: Any, tok: Any, out: Any) -> set[str]:
    overrides = parse_tensor_types(tensor_types)
    pinned = set()
    for n in names:
        if (tok is not None and n in ("token_embd.weight", "per_layer_token_embd.weight")) or (
                out is not None and n == "output.weight") or any(rx.search(n) for rx, _ in overrides):
            pinned.add(n)
    return pinned


def plan_for_budget(
    model: str | os.PathLike[str] | Profile,
    *,
    target_bpw: float | None = None,
    target_size: int | str | None = None,
    max_kld: float | None = None,
    max_tensor_error: float | None = None,
    profile_data: Profile | str | os.PathLike[str] | None = None,
    imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    calib: str | os.PathLike[str] | None = None,
    kld: bool | str = False,
    types: Iterable[GGMLType | str] | None = None,
    tensor_types: Iterable[str] | Mapping[str, GGMLType | str] | None = None,
    token_embedding_type: GGMLType | str | None = None,
    output_tensor_type: GGMLType | str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    quiet: bool = False,
) -> BudgetPlan:
    """Choose every tensor's type for a size, a bits-per-weight or a quality target.

    Args:
        model: a Hugging Face model directory (profiled here, from the cache when possible) or a
            :class:`~ggquant.precision.Profile`.
        target_bpw: bits per weight over all tensors (as :attr:`Plan.bits_per_weight` counts them).
        target_size: the GGUF file size in bytes, or a string such as ``"3.5G"`` / ``"900MiB"``.
        max_kld: the smallest plan whose predicted KLD is at most this (needs a profile with sensitivities).
        max_tensor_error: per tensor the smallest type whose error is at most this.
        profile_data: a profile (or its JSON file) to use instead of profiling ``model``; it must be of
            that model.
        imatrix / calib / kld / types / cache_dir / quiet: passed to :func:`ggquant.precision.profile`.
        tensor_types / token_embedding_type / output_tensor_type: overrides, as llama-quantize's
            ``--tensor-type`` etc.; they pin their tensors.

    Returns:
        A :class:`BudgetPlan` (a :class:`~ggquant.plan.Plan`); :func:`write_plan` writes its GGUF file.

    Raises:
        BudgetError: not exactly one target, a target below the smallest or above the largest possible
            file (the message gives both numbers), ``max_kld`` without sensitivities.
        ProfileError: a profile of another model.

    Example:
        >>> plan = plan_for_budget("path/to/model", target_size="3.5G", imatrix="imatrix.gguf")  # doctest: +SKIP
        >>> print(plan.format())                                                                 # doctest: +SKIP
    """
    targets = [k for k, v in (("target_bpw", target_bpw), ("target_size", target_size), ("max_kld", max_kld),
                              ("max_tensor_error", max_tensor_error)) if v is not None]
    if len(targets) != 1:
        raise BudgetError(f"give exactly one of target_bpw, target_size, max_kld, max_tensor_error "
                          f"(got {', '.join(targets) or 'none'})")
    prof = _get_profile(model, profile_data, imatrix=imatrix, calib=calib, kld=kld, types=types,
                        cache_dir=cache_dir, quiet=quiet)
    names = [t.name for t in prof.tensors]
    shapes = [t.shape for t in prof.tensors]
    base = plan_quantization(list(zip(names, shapes)), "q8_0", prof.model_info, tensor_types=tensor_types,
                             token_embedding_type=token_embedding_type, output_tensor_type=output_tensor_type)
    pinned = _pinned_names([t.name for t in prof.tensors if t.quantizable], tensor_types, token_embedding_type,
                           output_tensor_type)
    free = [t for t in prof.tensors if t.quantizable and t.name not in pinned]
    fixed = [pt for pt, tp in zip(base.tensors, prof.tensors) if not (tp.quantizable and tp.name not in pinned)]
    n_params = sum(t.n_elements for t in prof.tensors)

    def fixed_error(name: str, t: GGMLType) -> float:
        tp = prof.tensor(name)
        return next((c.error for c in tp.candidates if c.type == t), 0.0)

    by_size = target_size is not None
    cost_of = _padded if by_size else (lambda n: n)
    fixed_cost = sum(cost_of(t.nbytes) for t in fixed) + (prof.header_bytes if by_size else 0)
    items = [[(cost_of(c.nbytes), c.error) for c in t.candidates] for t in free]
    unit = "file bytes" if by_size else "weight bytes"

    def total(choice: Sequence[int]) -> int:
        return fixed_cost + sum(items[i][j][0] for i, j in enumerate(choice))

    lo_choice = [min(range(len(p)), key=lambda j: (p[j][0], p[j][1])) for p in items]
    hi_choice = [max(range(len(p)), key=lambda j: (p[j][0], -p[j][1])) for p in items]
    lam = 0.0
    if max_tensor_error is not None:
        target = f"max_tensor_error {max_tensor_error:g}"
        choice = []
        for t, p in zip(free, items):
            ok = [j for j, (_, e) in enumerate(p) if e <= max_tensor_error]
            choice.append(min(ok, key=lambda j: (p[j][0], p[j][1])) if ok else min(range(len(p)), key=lambda j: p[j][1]))
        budget = total(choice)
    elif max_kld is not None:
        if prof.kld is None:
            raise BudgetError("max_kld needs a profile with KLD sensitivities (profile with kld=True, CLI --kld "
                              "and -f CALIB)")
        target = f"max_kld {max_kld:g}"
        fixed_err = math.fsum(fixed_error(pt.name, pt.type) for pt in fixed)
        pts = path(items)
        best_err = pts[-1][1] + fixed_err
        if best_err > max_kld:
            raise BudgetError(f"max_kld {max_kld:g} is below the smallest predicted KLD of any plan, "
                              f"{best_err:.4g} (every tensor at its most accurate candidate)")
        c, _, choice = next(p for p in pts if p[1] + fixed_err <= max_kld)
        budget = fixed_cost + c
    else:
        if by_size:
            assert target_size is not None
            budget = parse_size(target_size)
            target = f"size {budget:,}"
        else:
            assert target_bpw is not None
            if not 0 < float(target_bpw) <= 64:
                raise BudgetError(f"target_bpw {target_bpw} is not a number of bits per weight in (0, 64]")
            budget = int(math.floor(float(target_bpw) * n_params / 8))
            target = f"bpw {float(target_bpw):g}"
        smallest, largest = total(lo_choice), total(hi_choice)
        what = "file" if by_size else "plan"

        def show(n: int) -> str:
            return _fmt_bytes(n) if by_size else f"{8 * n / n_params:.4f} bpw ({n:,} weight bytes)"

        if budget < smallest:
            raise BudgetError(f"target {show(budget)} is below the smallest possible {what}, {show(smallest)}")
        if budget > largest:
            raise BudgetError(f"target {show(budget)} is above the largest possible {what}, {show(largest)} "
                              f"(every tensor at its largest candidate type)")
        sol = solve_detailed(items, budget - fixed_cost)
        choice, lam = sol.choice, sol.lam

    chosen = {t.name: t.candidates[j] for t, j in zip(free, choice)}
    return _build(prof, base, chosen, pinned, tensor_types, token_embedding_type, output_tensor_type,
                  target, budget, lam, fixed_error, unit)


def _get_profile(model: str | os.PathLike[str] | Profile, given: Profile | str | os.PathLike[str] | None,
                 **kw: Any) -> Profile:
    if isinstance(model, Profile):
        if given is not None:
            raise BudgetError("pass the profile either as model or as profile_data, not both")
        return model
    if given is None:
        return profile(model, **kw)
    prof = given if isinstance(given, Profile) else load_profile(given)
    with CalibCache(kw.get("cache_dir")) as memo:
        sha = model_sha256(model_files(model), memo)
    if sha != prof.model_sha:
        raise ProfileError(f"the profile is of another model (SHA-256 {prof.model_sha[:16]}..., made from "
                           f"{prof.model_dir or 'an unknown directory'}); {model} has SHA-256 {sha[:16]}...")
    return prof


def _build(prof: Profile, base: Plan, chosen: Mapping[str, Any], pinned: set[str], tensor_types: Any, tok: Any,
           out: Any, target: str, budget: int, lam: float, fixed_error: Any, unit: str) -> BudgetPlan:
    per_type: dict[GGMLType, int] = {}
    for c in chosen.values():
        if type_info(c.type).is_quantized:  # plan_quantization applies overrides only under a quantized base
            per_type[c.type] = per_type.get(c.type, 0) + c.nbytes
    base_type = max(per_type, key=lambda t: per_type[t]) if per_type else GGMLType.Q8_0
    overrides = {f"^{re.escape(n)}$": type_info(c.type).name for n, c in chosen.items()}
    user = list(parse_tensor_types(tensor_types))
    specs: dict[str, GGMLType | str] = {rx.pattern: t for rx, t in user}
    specs.update({k: v for k, v in overrides.items() if k not in specs})
    p = plan_quantization([(t.name, t.shape) for t in prof.tensors], type_info(base_type).name, prof.model_info,
                          tensor_types=specs, token_embedding_type=tok, output_tensor_type=out)
    errors: dict[str, float] = {}
    for t in p.tensors:
        if t.name in chosen:
            if t.type != chosen[t.name].type or t.nbytes != chosen[t.name].nbytes:
                raise GGQuantError(f"internal: {t.name} planned as {type_info(t.type).name}, chosen "
                                   f"{type_info(chosen[t.name].type).name}")
            errors[t.name] = chosen[t.name].error
        elif prof.tensor(t.name).quantizable:
            errors[t.name] = fixed_error(t.name, t.type)
    bp = BudgetPlan(p.tensors, f"planned ({target})", p.file_type, p.n_fallback, list(p.warnings), errors=errors,
                    predicted_error=math.fsum(errors.values()), error_unit=prof.error_unit,
                    header_bytes=prof.header_bytes, target=target, budget=budget, lam=lam,
                    pinned=sorted(pinned), base_type=type_info(base_type).name)
    bp.file_size = prof.header_bytes + bp.tensor_data_size(_ALIGN)
    weights = sum(t.nbytes for t in bp.tensors)
    if target.startswith(("size", "bpw")) and (bp.file_size if unit == "file bytes" else weights) > budget:
        raise GGQuantError(f"internal: plan of {bp.file_size:,} bytes exceeds the budget {budget:,}")
    return bp


def write_plan(plan: BudgetPlan, model: str | os.PathLike[str], outfile: str | os.PathLike[str] | None, *,
               imatrix: str | os.PathLike[str] | Mapping[str, Any] | None = None, dry_run: bool = False,
               quiet: bool = False, **convert_kw: Any) -> ConversionResult:
    """Convert ``model`` to GGUF with the plan's types (the converter's own streaming pass).

    Args:
        plan: from :func:`plan_for_budget` for this model.
        model / outfile / imatrix / dry_run / quiet: as :func:`ggquant.convert`; pass the imatrix the
            profile measured with, so the tensors are quantized as they were measured.
        **convert_kw: further :func:`ggquant.convert` options (``nthreads``, ``name``, ...).

    Returns:
        The :class:`~ggquant.convert.ConversionResult`; its file size equals ``plan.file_size``.

    Raises:
        GGQuantError: the written size differs from the plan's (a plan of another model).
    """
    r = convert(model, outfile, plan, imatrix=imatrix, dry_run=dry_run, quiet=quiet, **convert_kw)
    if r.file_size != plan.file_size:
        raise GGQuantError(f"{model}: the converter's file is {r.file_size:,} bytes, the plan said "
                           f"{plan.file_size:,}; is the plan of another model?")
    return r


__all__ = ["BudgetError", "BudgetPlan", "Solution", "lower_hull", "parse_size", "path", "plan_for_budget", "solve",
           "solve_detailed", "write_plan"]
