"""Progress of long work on stderr, one reporter for the whole package (converting, profiling,
evaluating, computing an importance matrix): a tqdm bar when tqdm is installed, else one plain line
per step with the share done and an ETA, which also reads well in a log file."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Progress over ``total`` units (bytes with ``unit="B"``, else counted steps).

    Args:
        total: units to go through.
        quiet: print nothing.
        desc: what the work is, shown first ("converting", "imatrix", ...).
        unit: ``"B"`` for bytes (shown scaled, KiB/MiB), anything else names a counted step.

    Example:
        >>> from ggquant.progress import Progress
        >>> p = Progress(2, quiet=True, desc="demo", unit="tensor")
        >>> p.start("blk.0.attn_q.weight", "Q4_K"); p.update(1); p.close()
    """

    def __init__(self, total: int, quiet: bool, *, desc: str = "converting", unit: str = "B") -> None:
        self.quiet, self.desc, self.unit = quiet, desc, unit
        self.bar: Any = None
        self.done = 0
        self.total = total
        self.t0 = time.perf_counter()
        if quiet:
            return
        try:
            from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

            scaled = dict(unit="B", unit_scale=True, unit_divisor=1024) if unit == "B" else dict(unit=f" {unit}")
            self.bar = tqdm(total=total, dynamic_ncols=True, desc=desc, file=sys.stderr, **scaled)
        except ImportError:
            self.bar = None

    def start(self, name: str, what: str = "") -> None:
        """A step starts: ``name`` and, if given, what it becomes (a type name)."""
        if self.quiet:
            return
        label = f"{name} -> {what}" if what else name
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=False)
            return
        el = time.perf_counter() - self.t0
        eta = f"{el / self.done * (self.total - self.done):.0f} s" if self.done else "?"
        print(f"[{self.desc} {100 * self.done / max(self.total, 1):5.1f}%] {label} (ETA {eta})",
              file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        """``n`` more units are done."""
        self.done += n
        if self.bar is not None:
            self.bar.update(n)

    def close(self, interrupted: bool = False) -> None:
        """The work ended (``interrupted``: before all of it was done)."""
        if self.bar is not None:
            self.bar.close()
        if interrupted and not self.quiet:
            print(f"[{self.desc}] interrupted after {self.done} of {self.total}", file=sys.stderr, flush=True)


__all__ = ["Progress"]
