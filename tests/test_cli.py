"""The command line's surface: ``python -m ggquant``, ``--version``, ``config`` and every subcommand's ``--help``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import ggquant
import pytest
from ggquant.cli import build_parser, main


def _subcommands() -> list[str]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(ggquant.__file__)),
                                                        os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "ggquant", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_subcommands_include_the_core_ones():
    assert {"config", "convert"} <= set(_subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ggquant {command}") and "--help" in out


def test_python_dash_m_version_and_config():
    p = _run("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"ggquant {ggquant.__version__}", p.stderr
    p = _run("config")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"ggquant {ggquant.__version__}") and "simd in use" in p.stdout
    p = _run()
    assert p.returncode == 2 and "usage: ggquant" in p.stderr


def test_config_in_process(capsys):
    assert main(["config"]) == 0
    assert f"threads:         {ggquant.get_num_threads()}" in capsys.readouterr().out


def test_submodules_are_attributes_after_import_ggquant():
    """README's ``import ggquant; ggquant.gguf.GGUFReader(...)`` without importing the submodule first."""
    code = ("import ggquant, sys; print(ggquant.gguf.GGUFReader.__name__, ggquant.safetensors.safe_open.__name__, "
            "ggquant.mlx.quantize.__name__, ggquant.plan.plan_quantization.__name__, callable(ggquant.convert), "
            "callable(ggquant.config))")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(ggquant.__file__)))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["GGUFReader", "safe_open", "quantize", "plan_quantization", "True", "True"]
