"""The examples in the public docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ggquant

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(ggquant.__path__, "ggquant.") if not m.name.startswith("ggquant._")
)


@pytest.mark.parametrize("name", ["ggquant", *MODULES])
def test_docstring_examples(name):
    try:
        mod = importlib.import_module(name)
    except ImportError as e:  # a module needing an optional extra that is not installed
        pytest.skip(f"{name} needs an optional dependency: {e}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
