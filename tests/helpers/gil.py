"""Does a call release the GIL? Two Python threads run it at once and their call windows must overlap."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def assert_calls_overlap(work: Callable[[], object]) -> None:
    """Run ``work`` in two Python threads; fail unless the two calls were inside it at the same time."""
    windows: list[tuple[float, float]] = []

    def timed() -> None:
        t0 = time.perf_counter()
        work()
        windows.append((t0, time.perf_counter()))

    threads = [threading.Thread(target=timed) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1), (b0, b1) = windows
    assert max(a0, b0) < min(a1, b1), f"calls did not overlap: {windows}"
