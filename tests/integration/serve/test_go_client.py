"""The Go code builds with this machine's Go and works against a live ``looper serve`` with a token.

docs/examples/go (the client docs/http.md shows) and bench/serve_loadgen (the benchmark's
load generator) are built with ``go build`` (standard library only; GOFLAGS=-mod=mod lets
Go fetch modules from its proxy should they ever need any); the client then asks a real
server, on a real redis-server, for a decision and reports a click. Skipped only when
``go`` is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from looper_common.contracts import events
from tests.conftest import ROOT, _free_port
from tests.integration.serve.test_server import FEATURES, _wait

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("go") is None, reason="go is not installed: the Go client cannot be built"),
]


def _build(source: Path, out: Path) -> Path:
    env = {**os.environ, "GOFLAGS": "-mod=mod"}
    subprocess.run(["go", "build", "-o", str(out), str(source)], check=True, env=env, cwd=source.parent,
                   capture_output=True, text=True)
    return out


@pytest.fixture
def server(redis_url, redis_client):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOPER_HOME": str(ROOT), "LOOPER_API_TOKENS": "go-tok",
           "LOOPER_REDIS_URL": redis_url}
    proc = subprocess.Popen([sys.executable, "-m", "looper_common.cli", "serve", "--port", str(port),
                             "--blueprints", str(ROOT / "blueprints")], env=env, stderr=subprocess.DEVNULL)
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_go_client_gets_a_decision_and_reports_a_click(tmp_path, server, redis_client):
    client = _build(ROOT / "docs" / "examples" / "go" / "main.go", tmp_path / "looper-go")
    run = subprocess.run([str(client)], env={**os.environ, "LOOPER_URL": server, "LOOPER_TOKEN": "go-tok"},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.splitlines()
    decision_id, _, rest = first.partition(": ")
    assert rest.split()[0] in ("send", "skip") and "(p=" in rest and second == "observations accepted: 1"
    logged = [json.loads(f[events.PAYLOAD_FIELD.encode()])
              for _, f in redis_client.xrange(events.stream_key("notification_send"))]
    assert [(e["kind"], e["decision_id"]) for e in logged] == [("decision", decision_id), ("observation", decision_id)]
    assert logged[0]["unit_id"] == "user-42" and logged[1]["name"] == "click"

    wrong = subprocess.run([str(client)], env={**os.environ, "LOOPER_URL": server, "LOOPER_TOKEN": "nope"},
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1 and "/v1/decisions: 401 Unauthorized" in wrong.stderr


def test_the_load_generator_builds_and_counts_answers(tmp_path, server):
    loadgen = _build(ROOT / "bench" / "serve_loadgen" / "main.go", tmp_path / "serve_loadgen")
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"blueprint": "notification_send", "unit_id": "u1", "features": FEATURES}))
    run = subprocess.run([str(loadgen), "--url", f"{server}/v1/decisions", "--token", "go-tok", "--body", str(body),
                          "--rate", "50", "--seconds", "1", "--warmup", "0"],
                         capture_output=True, text=True, timeout=60, check=True)
    out = json.loads(run.stdout)
    assert (out["sent_total"], out["requests"], out["ok"], out["errors"]) == (50, 50, 50, 0)
    assert 0 < out["p50_ms"] <= out["p99_ms"] <= out["max_ms"]
