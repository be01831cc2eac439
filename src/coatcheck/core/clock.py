"""Time, injectable so that tests never sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

#: A clock is any callable returning the current Unix time in seconds.
Clock = Callable[[], float]


def system_clock() -> float:
    """Return the current Unix time in seconds."""
    return time.time()


class ManualClock:
    """A clock that moves only when told to; for tests and simulations.

    It starts at the real current time so that stores with server-side expiry
    (Redis TTLs) see sensible values.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds
