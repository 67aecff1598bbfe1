"""A circuit breaker: after a Redis failure, stop calling Redis for a back-off period.

Closed, every call goes to Redis. A failure opens the circuit for ``base_s``; each
further failure doubles the back-off, up to ``max_s``. When the back-off has passed,
one call is let through (half-open): its success closes the circuit, its failure opens
it again for the next, longer back-off. So a Redis that hangs costs one socket timeout
per back-off, not one per call. While a trial call is out, other threads find the
circuit still open.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Exponential back-off between calls to a failing dependency."""

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        if base_s <= 0 or max_s < base_s:
            raise ValueError(f"need 0 < base_s <= max_s, got base_s={base_s}, max_s={max_s}")
        self.base_s = base_s
        self.max_s = max_s
        self._clock = clock
        self._failures = 0  # consecutive failures; 0 is closed
        self._open_until = 0.0
        self.opened = 0  # times the circuit went from closed to open
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        """Whether calls are being held back now."""
        return self._failures > 0 and self._clock() < self._open_until

    def allow(self) -> bool:
        """Whether to call now: closed, or open with the back-off passed (one trial call)."""
        if self._failures == 0:
            return True
        now = self._clock()
        if now < self._open_until:
            return False
        self._open_until = now + self.backoff_s  # the trial's: others wait until it ends
        return True

    def success(self) -> None:
        """The call worked: close the circuit."""
        if self._failures:
            self._failures = 0
            self._open_until = 0.0

    def failure(self, error: BaseException) -> bool:
        """The call failed: open the circuit for the next back-off; True if it was closed."""
        was_closed = self._failures == 0
        if was_closed:
            self.opened += 1
        self._failures += 1
        self.last_error = f"{type(error).__name__}: {error}"
        self._open_until = self._clock() + self.backoff_s
        return was_closed

    @property
    def backoff_s(self) -> float:
        """The back-off after the failures so far (``base_s`` doubled per failure, capped)."""
        if self._failures == 0:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(self._failures - 1, 60))

    def state(self) -> str:
        """``closed``, ``open`` (calls held back) or ``half_open`` (the next call is a trial)."""
        if self._failures == 0:
            return "closed"
        return "open" if self._clock() < self._open_until else "half_open"
