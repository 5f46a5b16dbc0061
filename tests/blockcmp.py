"""Old import name of :mod:`helpers.compare`, kept for tests that still write ``from blockcmp import ...``."""

from __future__ import annotations

from helpers.compare import assert_blocks_equal, assert_floats_bitwise_equal

__all__ = ["assert_blocks_equal", "assert_floats_bitwise_equal"]
