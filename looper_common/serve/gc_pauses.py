"""The garbage collector of a serving process: the startup heap frozen, pauses measured.

After startup the process holds tens of thousands of long-lived objects (FastAPI,
pydantic, the blueprints); a full collection walks all of them, a pause of tens of
milliseconds on one request's latency. :func:`freeze_startup_heap` collects once and
moves them to the permanent generation (``gc.freeze``), so later collections walk only
what requests allocated, and raises the young generation's threshold so collections
come less often (most per-request objects are freed by reference counting before any
collection). :class:`GcPauses` times every collection through ``gc.callbacks``.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field

GEN0_THRESHOLD = 10_000  # CPython's default is 700


def freeze_startup_heap(gen0_threshold: int = GEN0_THRESHOLD) -> int:
    """Collect, freeze what survives, raise generation 0's threshold; returns the objects frozen."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)
    return gc.get_freeze_count()


@dataclass
class GcPauses:
    """Count and time the collections of each generation while installed."""

    count: list[int] = field(default_factory=lambda: [0, 0, 0])
    max_ms: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    total_ms: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    # CPU time of the longest pause: far below it, the pause was the machine's other work, not the collection
    max_cpu_ms: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    _started: tuple[float, float] = (0.0, 0.0)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
            return
        gen = info["generation"]
        pause = (time.perf_counter() - self._started[0]) * 1000
        self.count[gen] += 1
        self.total_ms[gen] += pause
        if pause > self.max_ms[gen]:
            self.max_ms[gen] = pause
            self.max_cpu_ms[gen] = (time.thread_time() - self._started[1]) * 1000

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, object]:
        """Per generation: collections, longest and total pause (wall clock), the longest one's CPU time."""
        return {
            "gc_collections": list(self.count),
            "gc_max_pause_ms": [round(v, 3) for v in self.max_ms],
            "gc_total_pause_ms": [round(v, 3) for v in self.total_ms],
            "gc_max_pause_cpu_ms": [round(v, 3) for v in self.max_cpu_ms],
        }
