"""The typed surface: the ``_core.pyi`` stub matches the extension, ``mypy --strict`` passes on the package
and on a user script calling the public API, and ``ggquant.quantize`` is typed per kind of type."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ggquant
import pytest

pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy, or the 'test' extra)")

ROOT = Path(__file__).resolve().parent.parent
PYTHON_DIR = Path(ggquant.__file__).resolve().parent.parent  # where the imported (built) package is
SOURCE_DIR = ROOT / "python"  # what mypy checks: the sources (an installed copy in site-packages may not be on MYPYPATH)
pytestmark = pytest.mark.slow

USER_SCRIPT = '''
from __future__ import annotations

import numpy as np
import numpy.typing as npt

import ggquant
from ggquant.gguf import GGUFReader, GGUFValueType, GGUFWriter

w = np.zeros((4, 64), np.float32)
blocks: npt.NDArray[np.uint8] = ggquant.quantize(w, "q4_0", nthreads=1)
back: np.ndarray = ggquant.dequantize(blocks, "q4_0")
q: ggquant.MLXQuantized = ggquant.quantize(w, "int4")
by_type = ggquant.quantize(w, ggquant.GGMLType.Q8_0)
reveal_type(by_type)
reveal_type(ggquant.quantize(w, "mlx:nvfp4"))
info: ggquant.TypeInfo = ggquant.type_info("q4_K")
n: int = ggquant.row_size("q4_K", 256) + info.block_size

with GGUFWriter("out.gguf") as gw:
    gw.add_kv("general.architecture", "llama")
    gw.add_kv("llama.block_count", 1, GGUFValueType.UINT32)
    gw.add_tensor_info("w", shape=(4, 64), type="q4_0")
    gw.write_tensor("w", blocks)
r = GGUFReader("out.gguf")
shape: tuple[int, ...] = r.tensor("w").shape

with ggquant.safe_open("m.safetensors") as f:
    names: list[str] = f.keys()
    x: np.ndarray = f.get_float32(names[0])

res: ggquant.ConversionResult = ggquant.convert("model-dir", None, "Q4_K_M", dry_run=True)
size: int = res.file_size + res.header_bytes
mres = ggquant.convert_mlx("model-dir", None, "int4", dry_run=True)
total: int = mres.total_size
ggquant.set_num_threads(2)
level: str = ggquant.get_simd_level()
'''


def _mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(SOURCE_DIR), MYPYPATH=str(SOURCE_DIR))
    return subprocess.run([sys.executable, "-m", "mypy", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def test_core_stub_matches_the_extension(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR))
    cfg = tmp_path / "mypy.ini"  # a cache of its own: a stale one in the checkout can hide differences
    cfg.write_text(f"[mypy]\ncache_dir = {tmp_path / 'cache'}\n")
    p = subprocess.run([sys.executable, "-m", "mypy.stubtest", "ggquant._core", "--mypy-config-file", str(cfg),
                        "--allowlist", str(ROOT / "tests" / "stubtest_allowlist.txt")],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_package_passes_mypy_strict(cache_dir):
    p = _mypy("--strict", "--cache-dir", str(cache_dir), str(SOURCE_DIR / "ggquant"), cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr


def test_user_script_passes_mypy_strict_with_precise_types(tmp_path, cache_dir):
    script = tmp_path / "user.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    p = _mypy("--strict", "--cache-dir", str(cache_dir), "--config-file", str(ROOT / "pyproject.toml"), str(script),
              cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    notes = [ln.split("Revealed type is ")[1] for ln in p.stdout.splitlines() if "Revealed type is" in ln]
    assert len(notes) == 2 and "numpy.unsignedinteger" in notes[0] and "MLXQuantized" not in notes[0]
    assert "fallback=ggquant.mlx.MLXQuantized" in notes[1]  # a NamedTuple
    bad = script.read_text().replace('q: ggquant.MLXQuantized = ggquant.quantize(w, "int4")',
                                     'q: ggquant.MLXQuantized = ggquant.quantize(w, "q4_0")')
    script.write_text(bad)
    p = _mypy("--strict", "--cache-dir", str(cache_dir), "--config-file", str(ROOT / "pyproject.toml"), str(script),
              cwd=tmp_path)
    assert p.returncode == 1 and "Incompatible types in assignment" in p.stdout, p.stdout
