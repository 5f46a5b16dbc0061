"""A short bounded run of each atheris harness (tests/fuzz/fuzz_python.py) on its seed corpus:
every input must load or raise a GGQuantError. Skipped when atheris (the "fuzz" extra) is missing;
the long runs are tests/fuzz/run_atheris.sh."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

import ggquant

HERE = pathlib.Path(__file__).parent
FUZZ = HERE / "fuzz"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed (pip install ggquant[fuzz])")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("atheris-seeds")
    subprocess.run([sys.executable, str(FUZZ / "make_corpus_python.py"), str(out)], check=True, env=_env())
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the ggquant this test imported (the installed one in CI, the source tree in a development set-up)
    env["PYTHONPATH"] = os.pathsep.join([str(pathlib.Path(ggquant.__file__).parent.parent), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("target", ["gguf", "safetensors", "checkpoint", "imatrix"])
def test_atheris_harness_bounded_run(target, seeds, tmp_path):
    corpus = {
        "gguf": [FUZZ / "corpus_gguf"],
        "safetensors": [FUZZ / "corpus_safetensors"],
        "checkpoint": [seeds / "checkpoint", FUZZ / "corpus_safetensors_json"],
        "imatrix": [seeds / "imatrix", FUZZ / "corpus_gguf"],
    }[target]
    work = tmp_path / "corpus"
    work.mkdir()
    cmd = [sys.executable, str(FUZZ / "fuzz_python.py"), target, "-atheris_runs=1000", "-max_total_time=3",
           "-max_len=4096", f"-artifact_prefix={tmp_path}/", str(work), *map(str, corpus)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done" in r.stderr, r.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))
