"""When observations reach Redis: an arrival lag, and an outage during which nothing is sent.

The simulator sends observations at the end of each simulated day; by default every
observation due by then goes. With a lag, one goes only once ``lag`` has passed since
its event time (a client that batches, an SDK that buffers); during an outage nothing
goes, and at the first day's end after it everything held back is sent at once. The
event time (``ts``) of an observation never changes: only when it arrives does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Arrival:
    """Arrival of observations: ``lag`` after their event time, none while ``outage`` lasts."""

    lag: timedelta = timedelta(0)
    outage: tuple[datetime, datetime] | None = None  # [start, end) of the outage, UTC

    def __post_init__(self) -> None:
        if self.lag < timedelta(0):
            raise ValueError(f"arrival lag must not be negative, got {self.lag}")
        if self.outage is not None and not self.outage[0] < self.outage[1]:
            raise ValueError(f"outage must end after it starts, got {self.outage}")

    def cutoff_ms(self, now_ms: int) -> int:
        """Observations with event time before this (epoch ms) are sent at ``now_ms``."""
        if self.outage is not None:
            start, end = (int(t.timestamp() * 1000) for t in self.outage)
            if start <= now_ms < end:
                return -(2**62)  # nothing goes
        return now_ms - int(self.lag.total_seconds() * 1000)
