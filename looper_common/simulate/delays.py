"""Feedback delays: a lognormal, so most observations arrive within hours and a tail takes days."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_DELAY_S = 30 * 86400.0  # a month: later feedback is never seen by any label window


@dataclass(frozen=True, slots=True)
class LogNormalDelay:
    """Delay between a decision and its observation, in seconds."""

    median_s: float
    sigma: float

    def seconds(self, z: float) -> float:
        """The delay at standard-normal draw ``z`` (capped at a month)."""
        return min(self.median_s * math.exp(self.sigma * z), MAX_DELAY_S)

    def prob_within(self, window_s: float) -> float:
        """P(delay <= window_s): the share of observations a label window catches."""
        if window_s <= 0:
            return 0.0
        if window_s >= MAX_DELAY_S:
            return 1.0
        x = (math.log(window_s) - math.log(self.median_s)) / self.sigma
        return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
