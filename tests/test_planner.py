"""The budget planner: the solver on plain numbers, then plans of tiny Llama models built here."""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ggquant
from ggquant import budget as B
from ggquant import precision as P
from ggquant.gguf import GGUFReader

TYPES = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0", "q4_0", "iq4_nl", "f16"]

points = st.lists(st.tuples(st.integers(1, 60), st.floats(0.0, 10.0)), min_size=1, max_size=6)
instances = st.lists(points, min_size=1, max_size=5)


@given(points)
def test_lower_hull_is_convex_and_falling(pts: list[tuple[int, float]]) -> None:
    h = B.lower_hull(pts)
    hp = [pts[i] for i in h]
    assert hp[0][0] == min(c for c, _ in pts)
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in zip(hp, hp[1:]))
    slopes = [(a[1] - b[1]) / (b[0] - a[0]) for a, b in zip(hp, hp[1:])]
    assert all(s0 > s1 for s0, s1 in zip(slopes, slopes[1:]))
    for c, e in pts:  # no point lies below the hull
        for (c0, e0), (c1, e1) in zip(hp, hp[1:]):
            if c0 <= c <= c1:
                assert e >= e0 + (e1 - e0) * (c - c0) / (c1 - c0) - 1e-9


def _best(items: list[list[tuple[int, float]]], budget: int) -> float:
    best = math.inf
    for ch in itertools.product(*[range(len(p)) for p in items]):
        if sum(items[i][j][0] for i, j in enumerate(ch)) <= budget:
            best = min(best, math.fsum(items[i][j][1] for i, j in enumerate(ch)))
    return best


@given(instances)
def test_solver_fits_is_monotone_and_optimal_on_the_lagrangian_path(items: list[list[tuple[int, float]]]) -> None:
    lo = sum(min(c for c, _ in p) for p in items)
    hi = sum(max(c for c, _ in p) for p in items)
    prev = math.inf
    for budget in range(lo, hi + 1):
        s = B.solve_detailed(items, budget)
        assert s.cost == sum(items[i][j][0] for i, j in enumerate(s.choice)) <= budget
        assert s.error <= prev + 1e-9  # a larger budget never gives a larger error
        prev = s.error
    for cost, err, _ in B.path(items):  # each path point is optimal for its own cost, and the solver finds it
        assert _best(items, cost) == pytest.approx(err, abs=1e-9)
        assert B.solve_detailed(items, cost).error <= err + 1e-9
    with pytest.raises(B.BudgetError, match=f"below the cheapest choice, {lo:,}"):
        B.solve(items, lo - 1)


def test_parse_size() -> None:
    assert B.parse_size("3.5G") == 3_500_000_000 and B.parse_size("1.5GiB") == 3 * 2**29
    with pytest.raises(B.BudgetError, match="invalid size"):
        B.parse_size("12 parsecs")


# ---------------------------------------------------------------------------------------------
# tiny models


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    from hf_models import build

    root = tmp_path_factory.mktemp("planner-models")
    build("llama", root / "wide", hidden=256, layers=2, vocab=384, seed=1)
    build("llama", root / "odd", hidden=160, layers=1, vocab=384, seed=2)  # rows of 160: no 256-block type fits
    return {"wide": root / "wide", "odd": root / "odd", "cache": root / "cache"}


@pytest.fixture(scope="module")
def prof(models: dict[str, Path]) -> P.Profile:
    return P.profile(models["wide"], types=TYPES, cache_dir=models["cache"], quiet=True)


def test_profile_points_and_fixed_tensors(prof: P.Profile) -> None:
    norms = [t for t in prof.tensors if "norm" in t.name]
    assert norms and all(not t.quantizable and not t.candidates for t in norms)
    t = prof.tensor("blk.0.ffn_down.weight")
    errs = {ggquant.type_info(c.type).name: c.weight_error for c in t.candidates}
    assert errs["q2_K"] > errs["q3_K"] > errs["q4_K"] > errs["q5_K"] > errs["q6_K"] > errs["q8_0"] > errs["f16"]
    assert all(c.nbytes == ggquant.row_size(c.type, t.shape[-1]) * t.shape[0] for c in t.candidates)
    assert "blk.0.ffn_down.weight" in prof.table() and prof.error_unit == "wmse"


def test_weight_error_matches_a_direct_computation(rng: np.random.Generator) -> None:
    x = rng.standard_normal((8, 256)).astype(np.float32)
    v = rng.uniform(0.1, 3.0, 256).astype(np.float32)
    got = P.weight_errors([x], [ggquant.GGMLType.Q4_K], v)[ggquant.GGMLType.Q4_K]
    y = ggquant.dequantize(ggquant.quantize(x, "q4_K", imatrix=v), "q4_K")
    assert got == pytest.approx(float(((x - y) ** 2 * v).sum() / (x**2 * v).sum()), rel=1e-6)


def test_plan_to_size_is_exact_and_never_over(models: dict[str, Path], prof: P.Profile, tmp_path: Path) -> None:
    smallest = B.plan_for_budget(prof, max_tensor_error=math.inf).file_size
    largest = prof.header_bytes + sum(
        B._padded(max(c.nbytes for c in t.candidates)) if t.quantizable else B._padded(4 * t.n_elements)
        for t in prof.tensors)
    target = (smallest + largest) // 3
    plan = B.plan_for_budget(prof, target_size=target)
    assert plan.file_size <= target
    steps = [B._padded(c.nbytes) - B._padded(plan.tensor(t.name).nbytes) for t in prof.tensors if t.quantizable
             for c in t.candidates if c.error < plan.errors[t.name]]
    assert target - plan.file_size < min(s for s in steps if s > 0)  # no improving change would still fit
    r = B.write_plan(plan, models["wide"], tmp_path / "planned.gguf", quiet=True)
    assert (tmp_path / "planned.gguf").stat().st_size == plan.file_size == r.file_size
    g = GGUFReader(tmp_path / "planned.gguf")
    written = {t.name: t.type for t in g.tensors}
    assert written == {t.name: t.type for t in plan.tensors}
    assert "predicted error" in plan.format() and plan.report()["tensors"][0]["type"]


def test_budgets_are_monotone_and_bounded(prof: P.Profile) -> None:
    n = sum(t.n_elements for t in prof.tensors)
    errs = []
    for bpw in np.linspace(3.2, 9.0, 12):
        p = B.plan_for_budget(prof, target_bpw=float(bpw))
        assert p.bits_per_weight <= bpw + 1e-9
        assert sum(t.nbytes for t in p.tensors) <= bpw * n / 8
        errs.append(p.predicted_error)
    assert all(b <= a + 1e-12 for a, b in zip(errs, errs[1:])) and errs[-1] < errs[0]
    with pytest.raises(B.BudgetError, match=r"target 1\.000 kB \(1,000 bytes\) is below the smallest possible "
                                            r"file, \d+\.\d+ kB"):
        B.plan_for_budget(prof, target_size=1000)
    with pytest.raises(B.BudgetError, match="above the largest possible file"):
        B.plan_for_budget(prof, target_size="10G")
    with pytest.raises(B.BudgetError, match="exactly one"):
        B.plan_for_budget(prof, target_bpw=4.0, target_size="1M")
    with pytest.raises(B.BudgetError, match="needs a profile with KLD"):
        B.plan_for_budget(prof, max_kld=0.01)


def test_fixed_rules_and_overrides_win(models: dict[str, Path], prof: P.Profile) -> None:
    p = B.plan_for_budget(prof, target_bpw=4.0, tensor_types=["attn_v=q8_0"], token_embedding_type="q6_K")
    for t in p.tensors:
        if "norm" in t.name:
            assert t.type == ggquant.GGMLType.F32
        if "attn_v" in t.name:
            assert t.type == ggquant.GGMLType.Q8_0 and t.name in p.pinned
    assert p.tensor("token_embd.weight").type == ggquant.GGMLType.Q6_K
    assert p.bits_per_weight <= 4.0
    odd = P.profile(models["odd"], types=TYPES, cache_dir=models["cache"], quiet=True)
    q = B.plan_for_budget(odd, target_bpw=5.0)
    for t in q.tensors:
        if ggquant.type_info(t.type).is_quantized:
            assert t.shape[-1] % ggquant.type_info(t.type).block_size == 0
            assert ggquant.type_info(t.type).block_size == 32  # 160 columns: only 32-blocks fit


def test_threshold_policy(prof: P.Profile) -> None:
    limit = 5e-3
    p = B.plan_for_budget(prof, max_tensor_error=limit)
    for t in prof.tensors:
        if t.quantizable:
            ok = [c for c in t.candidates if c.error <= limit]
            assert p.tensor(t.name).nbytes == min(c.nbytes for c in ok)


def test_cache_makes_the_second_profile_fast_and_follows_the_model(models: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    d = tmp_path / "m"
    shutil.copytree(models["wide"], d)
    t0 = time.perf_counter()
    first = P.profile(d, cache_dir=tmp_path / "c", quiet=True)
    t1 = time.perf_counter()
    second = P.profile(d, cache_dir=tmp_path / "c", quiet=True)
    t2 = time.perf_counter()
    assert second.cached == first.measured > 0 and second.measured == 0
    assert (t1 - t0) >= 20 * (t2 - t1), (t1 - t0, t2 - t1)
    assert second.to_dict()["tensors"] == first.to_dict()["tensors"]
    from safetensors.numpy import load_file, save_file

    w = load_file(d / "model.safetensors")
    k = "model.layers.0.mlp.down_proj.weight"
    w[k] = (w[k] * 1.5).astype(w[k].dtype)
    save_file(w, d / "model.safetensors", metadata={"format": "pt"})
    third = P.profile(d, types=TYPES, cache_dir=tmp_path / "c", quiet=True)
    assert third.model_sha != first.model_sha and third.cached == 0


def test_bad_types_and_foreign_profiles(models: dict[str, Path], prof: P.Profile, tmp_path: Path) -> None:
    with pytest.raises(P.ProfileError, match="unknown type 'q4_Z'.*valid: .*q4_K"):
        P.profile(models["wide"], types=["q4_K", "q4_Z"], cache_dir=models["cache"], quiet=True)
    with pytest.raises(P.ProfileError, match="q8_K cannot be a candidate"):
        P.candidate_types(["q8_K"])
    prof.save(tmp_path / "p.json")
    assert P.load_profile(tmp_path / "p.json").to_dict() == prof.to_dict()
    with pytest.raises(P.ProfileError, match="another model"):
        B.plan_for_budget(models["odd"], target_bpw=5.0, profile_data=tmp_path / "p.json", cache_dir=models["cache"])
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(P.ProfileError, match="not a ggquant profile"):
        P.load_profile(tmp_path / "x.json")


def test_plot_is_written(prof: P.Profile, tmp_path: Path) -> None:
    prof.plot(tmp_path / "p.svg")
    svg = (tmp_path / "p.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<rect") == sum(t.quantizable for t in prof.tensors)


def test_cli_profile_cache_and_planned_convert(models: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from ggquant.cli import main

    cache = ["--cache-dir", str(models["cache"])]
    assert main(["profile", str(models["wide"]), "--types", "q4_K,q8_0", "--json", str(tmp_path / "p.json"),
                 "--quiet", *cache]) == 0
    assert "blk.1.attn_v.weight" in capsys.readouterr().out
    assert P.load_profile(tmp_path / "p.json").tensor("blk.1.attn_v.weight").candidate("q8_0").nbytes > 0
    assert main(["profile", str(models["wide"]), "--types", "q4_K,q9_K", "--quiet", *cache]) == 1
    assert "unknown type 'q9_K'" in capsys.readouterr().err
    assert main(["convert", str(models["wide"]), "--target-bpw", "5.5", "--types", ",".join(TYPES), "--dry-run",
                 "--report", str(tmp_path / "r.json"), "--quiet", *cache]) == 0
    out = capsys.readouterr().out
    assert "file size:" in out and "predicted error:" in out
    import json

    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["bits_per_weight"] <= 5.5 and all("predicted_error" in t for t in rep["tensors"])
    assert main(["convert", str(models["wide"]), "--target-size", "1K", "--types", "q4_K", "--dry-run", "--quiet",
                 *cache]) == 1
    assert "below the smallest possible file" in capsys.readouterr().err
    assert main(["cache", "export", str(tmp_path / "e.json"), *cache]) == 0
    assert main(["cache", "list", *cache]) == 0
    assert "records" in capsys.readouterr().out


def test_kld_sensitivity_profile_and_quality_target(models: dict[str, Path], tmp_path: Path) -> None:
    from hf_models import CORPUS

    text = " ".join(CORPUS) * 3
    kw = dict(calib=text, kld=True, ctx=32, n_chunks=2, types=["q2_K", "q4_K", "q8_0"], quiet=True)
    p = P.profile(models["wide"], cache_dir=tmp_path, **kw)
    q = [t for t in p.tensors if t.quantizable]
    assert p.kld == "tensor" and p.error_unit == "KLD" and p.measured > 0
    assert all(t.sensitivity is not None and t.sensitivity >= 0 for t in q)
    assert sum(t.probe_kld > 0 for t in q) >= len(q) - 2
    for t in q:
        for c in t.candidates:
            assert c.error == pytest.approx(c.weight_error * t.sensitivity)
    again = P.profile(models["wide"], cache_dir=tmp_path, **kw)
    assert again.measured == 0 and [t.sensitivity for t in again.tensors] == [t.sensitivity for t in p.tensors]
    worst = B.plan_for_budget(p, max_tensor_error=math.inf).predicted_error  # the smallest file
    best = math.fsum(min(c.error for c in t.candidates) for t in q)
    loose = B.plan_for_budget(p, max_kld=(worst + best) / 2)
    tight = B.plan_for_budget(p, max_kld=best * 1.2)
    assert best <= tight.predicted_error <= best * 1.2 < loose.predicted_error <= (worst + best) / 2
    assert tight.file_size > loose.file_size
    with pytest.raises(B.BudgetError, match=f"below the smallest predicted KLD of any plan, {best:.4g}"):
        B.plan_for_budget(p, max_kld=best / 2)
