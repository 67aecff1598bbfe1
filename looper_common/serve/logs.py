"""Structured logs: one JSON object per line on stderr; requests summed up per second.

Uvicorn's own loggers go through the same formatter (its access log is replaced by
:class:`RequestLog`, which also times the request). Extra fields are passed with
``extra={"fields": {...}}``; headers and bodies are never logged, so neither are tokens.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("looper.serve.access")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...fields}`` as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, separators=(",", ":"))


def configure_logging(level: str = "info") -> None:
    """Send Looper's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


class RequestLog:
    """Time every HTTP request (401s included) into ``stats``; log each 5xx (a warning), each request at debug."""

    def __init__(self, app: ASGIApp, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            ms = (time.perf_counter() - start) * 1000
            if status >= 500 or access_log.isEnabledFor(logging.DEBUG):
                (access_log.warning if status >= 500 else access_log.debug)("request", extra={"fields": {
                    "method": scope["method"], "path": scope["path"], "status": status, "duration_ms": round(ms, 3),
                }})
            self.stats.add(scope["path"], status, ms)


class RequestStats:
    """Requests counted and timed: one ``requests`` line per second with traffic, percentiles since start.

    The line (at ``info``) holds the count, counts by path and by status, and duration
    percentiles; a line per request (a JSON encoding and a write each) is at ``debug``.
    Durations are timed in the app, HTTP parsing excluded.
    """

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self.total = DurationHistogram()
        self._window: list[tuple[str, int, float]] = []
        self._window_end = time.monotonic() + window_s

    def add(self, path: str, status: int, ms: float) -> None:
        self.total.add(ms)
        self._window.append((path, status, ms))
        if time.monotonic() >= self._window_end:
            self.flush_window()

    def flush_window(self) -> None:
        """Log the ``requests`` line of the requests since the last one (none: nothing logged)."""
        window, self._window = self._window, []
        self._window_end = time.monotonic() + self.window_s
        if not window or not access_log.isEnabledFor(logging.INFO):
            return
        paths: dict[str, int] = {}
        statuses: dict[str, int] = {}
        for path, status, _ in window:
            paths[path] = paths.get(path, 0) + 1
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        durations = sorted(ms for _, _, ms in window)
        access_log.info("requests", extra={"fields": {
            "count": len(window), "paths": paths, "statuses": statuses,
            **{f"p{q}_ms": round(_percentile(durations, q), 3) for q in (50, 99)},
            "max_ms": round(durations[-1], 3),
        }})

    def summary(self) -> dict[str, object]:
        """Requests and their duration percentiles since start."""
        return self.total.summary()


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    k = max(0, min(len(ordered) - 1, int(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


class DurationHistogram:
    """Durations in 10 µs bins up to 1 s (the maximum kept exactly): percentiles within 10 µs."""

    BIN_MS = 0.01
    BINS = 100_000

    def __init__(self) -> None:
        self.counts = [0] * (self.BINS + 1)
        self.n = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        self.counts[min(int(ms / self.BIN_MS), self.BINS)] += 1
        self.n += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def percentile(self, q: float) -> float:
        """The upper edge of the bin holding the nearest-rank ``q``-th percentile (the maximum, if higher)."""
        rank = max(1, int(q / 100 * self.n + 0.5))
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return self.max_ms if i == self.BINS else min((i + 1) * self.BIN_MS, self.max_ms)
        return self.max_ms

    def summary(self) -> dict[str, object]:
        if not self.n:
            return {"requests": 0}
        return {"requests": self.n, **{f"p{q}_ms": round(self.percentile(q), 3) for q in (50, 90, 99)},
                "max_ms": round(self.max_ms, 3)}
