"""The converter's overlapped tensor loop (ggquant.convert.stream) and one read for many presets.

Every file must be byte-identical to what the plain path gives: a single-preset convert() of the
same model, whatever the batch size, the thread count or how many presets share the pass; errors
must leave no file behind for any preset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import hf_models
import numpy as np
import pytest

import ggquant
from ggquant import GGQuantError
from ggquant.convert import stream

_HF_MISSING = next((f"{m} is not installed" for m in ("torch", "transformers", "tokenizers")
                    if importlib.util.find_spec(m) is None), None)
pytestmark = pytest.mark.skipif(_HF_MISSING is not None, reason=str(_HF_MISSING))

PRESETS = ["Q4_K_M", "Q8_0", "F16", "Q6_K"]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A bf16 Llama (2-D tensors, q/k permuted) and a Mixtral (3-D experts from per-expert parts)."""
    root = tmp_path_factory.mktemp("stream")
    out = {}
    for arch in ("llama", "mixtral"):
        out[arch] = root / arch
        hf_models.build(arch, out[arch], hidden=256, layers=2, dtype="bfloat16")
    return out


@pytest.fixture(scope="module")
def singles(model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], bytes]:
    """Each preset converted alone, with the default batch size and all threads."""
    root = tmp_path_factory.mktemp("single")
    got = {}
    for arch, d in model_dirs.items():
        for p in PRESETS:
            out = root / f"{arch}-{p}.gguf"
            ggquant.convert(d, out, p, quiet=True)
            got[arch, p] = out.read_bytes()
    return got


@pytest.mark.parametrize("arch", ["llama", "mixtral"])
def test_many_presets_in_one_pass_equal_single_runs(model_dirs, singles, tmp_path, arch):
    rs = ggquant.convert_many(model_dirs[arch], tmp_path / "m-{preset}.gguf", PRESETS, quiet=True, nthreads=2)
    assert [r.path.name for r in rs] == [f"m-{p}.gguf" for p in PRESETS]
    for r, p in zip(rs, PRESETS):
        assert r.plan.preset == p
        assert r.path.read_bytes() == singles[arch, p], p
        assert r.file_size == len(singles[arch, p])


@pytest.mark.parametrize("batch_bytes", [1, 4096, 200_000])
def test_batch_size_and_threads_do_not_change_bytes(model_dirs, singles, tmp_path, monkeypatch, batch_bytes):
    # tiny batches cut every tensor into row chunks (expert by expert) and hand many tensors to the writer
    monkeypatch.setattr(stream, "BATCH_BYTES", batch_bytes)
    for arch, d in model_dirs.items():
        for n in (1, 3):
            out = tmp_path / f"{arch}-{n}.gguf"
            ggquant.convert(d, out, "Q4_K_M", quiet=True, nthreads=n)
            assert out.read_bytes() == singles[arch, "Q4_K_M"], (arch, n)


def test_cli_comma_separated_presets(model_dirs, singles, tmp_path):
    from ggquant.cli import main

    status = main(["convert", str(model_dirs["llama"]), "-q", "Q8_0,F16", "-o", str(tmp_path / "c-{preset}.gguf"),
                   "--quiet"])
    assert status == 0
    assert (tmp_path / "c-Q8_0.gguf").read_bytes() == singles["llama", "Q8_0"]
    assert (tmp_path / "c-F16.gguf").read_bytes() == singles["llama", "F16"]
    assert main(["convert", str(model_dirs["llama"]), "-q", "Q8_0,F16", "-o", str(tmp_path / "x.gguf"), "--quiet"]) == 1
    assert not (tmp_path / "x.gguf").exists()


def test_bad_preset_lists(model_dirs, tmp_path):
    d = model_dirs["llama"]
    with pytest.raises(GGQuantError, match="needs \\{preset\\}"):
        ggquant.convert_many(d, tmp_path / "out.gguf", ["Q8_0", "F16"])
    with pytest.raises(GGQuantError, match="more than once"):
        ggquant.convert_many(d, tmp_path / "o-{preset}.gguf", ["Q8_0", "Q8_0"])
    with pytest.raises(GGQuantError, match="at least one"):
        ggquant.convert_many(d, tmp_path / "o-{preset}.gguf", [])
    dry = ggquant.convert_many(d, None, ["Q8_0", "Q4_K_M"], dry_run=True)
    assert [r.plan.preset for r in dry] == ["Q8_0", "Q4_K_M"] and all(r.path is None for r in dry)
    assert list(tmp_path.iterdir()) == []


def test_error_mid_pass_leaves_no_file(model_dirs, tmp_path, monkeypatch):
    # a NaN in the last layer: earlier tensors are already with the writer thread when it is found
    monkeypatch.setattr(stream, "BATCH_BYTES", 4096)
    src = model_dirs["llama"]
    d = tmp_path / "nan"
    d.mkdir()
    for f in src.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    st = ggquant.safe_open(d / "model.safetensors")
    tensors = {k: np.array(st[k]) for k in st.keys()}  # noqa: SIM118
    st.close()
    name = "model.layers.1.mlp.down_proj.weight"
    tensors[name].view(np.uint16).reshape(-1)[5] = 0x7FC0  # bfloat16 NaN
    ggquant.save_file(tensors, d / "model.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ggquant.NonFiniteError, match="blk.1.ffn_down.weight.*NaN"):
        ggquant.convert_many(d, out / "n-{preset}.gguf", ["Q8_0", "Q4_K_M"], quiet=True)
    assert list(out.iterdir()) == []
