"""ggquant.hub: Hub ids resolved through huggingface_hub's cache, tested offline with a pre-filled cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ggquant
from ggquant.hub import is_hub_id, resolve_model
from ggquant.inspect_file import inspect_file

pytest.importorskip("huggingface_hub")


def _prefill(cache: Path, repo: str, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """The layout huggingface_hub's cache uses: models--owner--name/{refs/main, snapshots/<commit>/...}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    (snap / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    ggquant.save_file({"w": np.ones((2, 2), np.float32)}, snap / "model.safetensors")
    return snap


def _differs(a, b) -> bool:
    return bool(np.any(np.asarray(a) != np.asarray(b))) if np.shape(a) == np.shape(b) else True


def test_local_paths_are_returned_unchanged(tmp_path, monkeypatch):
    assert resolve_model(tmp_path) == tmp_path
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").mkdir()
    monkeypatch.chdir(tmp_path)  # "org/name" now exists as a relative path: never a Hub id
    assert not is_hub_id("org/name") and resolve_model("org/name") == Path("org/name")
    assert is_hub_id("Qwen/Qwen3-0.6B") and not is_hub_id("../x/y") and not is_hub_id("a/b/c")


def test_offline_from_prefilled_cache(tmp_path):
    snap = _prefill(tmp_path / "hub", "org/tiny")
    d = resolve_model("org/tiny", offline=True, cache_dir=tmp_path / "hub")
    assert d == snap and (d / "model.safetensors").is_file()
    with pytest.raises(ggquant.GGQuantIOError, match="not in the local Hugging Face cache"):
        resolve_model("org/missing", offline=True, cache_dir=tmp_path / "hub")


def test_hf_hub_offline_env_is_respected(tmp_path):
    snap = _prefill(tmp_path / "hub", "org/tiny")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    code = ("from ggquant.hub import resolve_model; print(resolve_model('org/tiny'))\n"
            "try:\n    resolve_model('org/other')\nexcept Exception as e:\n    print(type(e).__name__)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(snap), "GGQuantIOError"]


def test_convert_takes_a_hub_id_offline(tmp_path):
    pytest.importorskip("transformers")
    import hf_models

    local = tmp_path / "Tiny-Llama"
    hf_models.build("llama", local, hidden=64, layers=1, vocab=384)
    snap = _prefill(tmp_path / "hub", "org/Tiny-Llama")
    for f in local.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    out = tmp_path / "hub.gguf"
    p = subprocess.run([sys.executable, "-m", "ggquant", "convert", "org/Tiny-Llama", "-o", str(out), "-q", "Q8_0",
                        "--quiet"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path / "hub")
    assert p.returncode == 0, p.stderr
    direct = tmp_path / "direct.gguf"
    ggquant.convert(local, direct, "Q8_0", quiet=True)
    hub, loc = inspect_file(out), inspect_file(direct)
    assert [(t.name, t.type, t.nbytes) for t in hub.tensors] == [(t.name, t.type, t.nbytes) for t in loc.tensors]
    diff = {k: v for k, v in hub.metadata.items() if k not in loc.metadata or _differs(v, loc.metadata[k])}
    assert diff == {"general.organization": "Org"}  # named from the id, not from the snapshot's commit hash
    assert hub.metadata["general.name"] == loc.metadata["general.name"] == "Tiny Llama"
    p = subprocess.run([sys.executable, "-m", "ggquant", "convert", "org/not-cached", "-o", str(out), "--quiet"],
                       env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path / "hub")
    assert p.returncode == 1 and "not in the local Hugging Face cache" in p.stderr
