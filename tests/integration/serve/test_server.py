"""``looper serve`` as a real uvicorn process: JSON logs, 127.0.0.1, and a shutdown that flushes.

Redis is away when the decisions are served (the SDK serves the default and keeps the
events); it comes up before SIGTERM, and the events must be in the stream once the
process has exited.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import redis

from looper_common.contracts import events
from tests.conftest import ROOT, _free_port

pytestmark = pytest.mark.integration

FEATURES = {"days_since_last_visit": 3.5, "sessions_last_7d": 2, "push_opt_in": True, "country": "us",
            "platform": "ios"}


def _wait(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            pytest.fail(f"looper serve exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail("looper serve did not start")


def test_shutdown_flushes_events_kept_while_redis_was_away(redis_process):
    redis_port, port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOPER_HOME": str(ROOT), "LOOPER_API_TOKENS": "tok",
           "LOOPER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "looper_common.cli", "serve", "--port", str(port), "--blueprints",
         str(ROOT / "blueprints")], env=env, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(f"{base}/healthz", server)
        assert httpx.get(f"{base}/readyz").status_code == 503
        auth = {"Authorization": "Bearer tok"}
        served = [httpx.post(f"{base}/v1/decisions", headers=auth, json={
            "blueprint": "notification_send", "unit_id": f"u{i}", "features": FEATURES}).json() for i in range(3)]
        assert all(d["is_default"] for d in served)
        redis_process(port=redis_port)  # Redis is back (stopped by the fixture)
        assert httpx.get(f"{base}/readyz").status_code == 200
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr
        logged = [json.loads(f[b"e"]) for _, f in
                  redis.Redis(port=redis_port).xrange(events.stream_key("notification_send"))]
        assert [e["decision_id"] for e in logged] == [d["decision_id"] for d in served]
        lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
        access = [line for line in lines if line["logger"] == "looper.serve.access"]
        summaries = [line for line in access if line["msg"] == "requests"]  # at info: a line per second
        [warned] = [line for line in access if line["msg"] == "request"]  # and one per 5xx answer
        assert (warned["level"], warned["path"], warned["status"]) == ("warning", "/readyz", 503)
        by_path: dict[str, int] = {}
        for line in summaries:
            for path, count in line["paths"].items():
                by_path[path] = by_path.get(path, 0) + count
        assert by_path == {"/healthz": 1, "/readyz": 2, "/v1/decisions": 3}
        assert sum(line["statuses"].get("503", 0) for line in summaries) == 1
        [stopped] = [line for line in lines if line["msg"] == "stopped"]
        assert stopped["unsent_events"] == 0 and stopped["requests"] == 6
        assert 0 < stopped["p50_ms"] <= stopped["p99_ms"] <= stopped["max_ms"]
        assert len(stopped["gc_collections"]) == 3 and stopped["rounds"]["notification_send"] == [3, 3]
        assert any(f"127.0.0.1:{port}" in line["msg"] for line in lines)  # bound to loopback
        assert "tok" not in stderr.replace("token", "")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_shutdown_exits_1_when_events_could_not_be_sent(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOPER_HOME": str(ROOT), "LOOPER_API_TOKENS": "tok",
           "LOOPER_REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "looper_common.cli", "serve", "--port", str(port), "--log-level", "debug"], env=env,
        stderr=subprocess.PIPE, text=True)
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", server)
        httpx.post(f"http://127.0.0.1:{port}/v1/decisions", headers={"Authorization": "Bearer tok"},
                   json={"blueprint": "notification_send", "unit_id": "u1", "features": FEATURES})
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
        assert server.returncode == 1
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        [stopped] = [line for line in lines if line["msg"] == "stopped"]
        assert stopped["unsent_events"] == 1
        per_request = [line for line in lines if line["msg"] == "request"]  # --log-level debug: one per request
        assert [(r["path"], r["status"]) for r in per_request] == [("/healthz", 200), ("/v1/decisions", 200)]
        assert all(r["duration_ms"] >= 0 for r in per_request)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
