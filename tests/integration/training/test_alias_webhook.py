"""Reviewer alias moves reach gold/alias_history at the time MLflow made them, via a real MLflow server's webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import mlflow
import pytest

from looper_common.lake.engine import Lake
from looper_common.lake.tables import ALIAS_HISTORY
from looper_common.training.alias_webhook import ACTOR, receiver, register
from tests.conftest import _free_port

pytestmark = pytest.mark.integration
SECRET = "tidy-webhook-secret"
MODEL = "looper.t_notify.clicked"


@pytest.fixture
def mlflow_server(tmp_path):
    """``mlflow server`` on a sqlite store, allowed to POST to a local plain-HTTP receiver."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true"}
    db = tmp_path / "mlflow.db"
    proc = subprocess.Popen(
        [shutil.which("mlflow", path=os.path.dirname(sys.executable)) or "mlflow", "server",
         "--backend-store-uri", f"sqlite:///{db}", "--default-artifact-root", str(tmp_path / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "mlflow.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("mlflow server exited: " + (tmp_path / "mlflow.log").read_text()[-2000:])
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not answer within 300 s")
    yield url, f"sqlite:///{db}"
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def history(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables([ALIAS_HISTORY])
    server = receiver(lake, SECRET)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield lake, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _rows(lake: Lake) -> list[dict]:
    return sorted(lake.read(ALIAS_HISTORY).table.to_pylist(), key=lambda r: r["ts"])


def _wait_for_rows(lake: Lake, n: int) -> list[dict]:
    for _ in range(240):  # delivery runs on MLflow's thread pool, after the request
        rows = _rows(lake)
        if len(rows) >= n:
            return rows
        time.sleep(0.25)
    return _rows(lake)


def test_a_move_in_the_mlflow_server_is_recorded_at_its_time(mlflow_server, history, tmp_path):
    url, store = mlflow_server
    lake, hook_url = history
    client, direct = mlflow.MlflowClient(url, url), mlflow.MlflowClient(store, store)
    register(client, hook_url, SECRET)
    direct.create_registered_model(MODEL)  # the versions as train_models registers them: on the store
    for _ in range(2):
        direct.create_model_version(MODEL, source=str(tmp_path / "artifacts" / "m"))
    before = datetime.now(UTC)
    client.set_registered_model_alias(MODEL, "champion", "1")  # what the UI's "add alias" calls
    rows = _wait_for_rows(lake, 1)
    after = datetime.now(UTC)
    assert len(rows) == 1
    row = rows[0]
    assert (row["model"], row["alias"], row["version"], row["previous_version"]) == (MODEL, "champion", "1", None)
    assert row["actor"] == ACTOR and row["blueprint"] == "t_notify"
    assert before <= row["ts"] <= after  # the move's time, not when a later job found it

    client.set_registered_model_alias(MODEL, "champion", "2")
    rows = _wait_for_rows(lake, 2)
    assert [(r["version"], r["previous_version"]) for r in rows] == [("1", None), ("2", "1")]
    client.delete_registered_model_alias(MODEL, "champion")
    rows = _wait_for_rows(lake, 3)
    assert [(r["version"], r["previous_version"]) for r in rows][-1] == (None, "2")

    # a move written straight to the sqlite store (as Looper's jobs do) fires no webhook
    direct.set_registered_model_alias(MODEL, "challenger", "1")
    time.sleep(3)
    assert len(_rows(lake)) == 3


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _signed(body: bytes, secret: str = SECRET, stamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if stamp is None else stamp)
    digest = hmac.new(secret.encode(), f"d1.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"X-MLflow-Delivery-Id": "d1", "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode()}


def test_unsigned_forged_or_stale_deliveries_record_nothing(history):
    lake, url = history
    body = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "2026-01-02T10:00:00+00:00",
                       "data": {"name": MODEL, "alias": "champion", "version": "9"}}).encode()
    assert _post(url, body, {}) == 401
    assert _post(url, body, _signed(body, secret="wrong")) == 401
    assert _post(url, body, _signed(body, stamp=int(time.time()) - 3600)) == 401
    assert _post(url, b"not json", _signed(b"not json")) == 400
    assert _rows(lake) == []
    assert _post(url, body, _signed(body)) == 200
    assert _post(url, body, _signed(body)) == 200  # a retried delivery: recorded once
    [row] = _rows(lake)
    assert row["ts"] == datetime(2026, 1, 2, 10, tzinfo=UTC) and row["version"] == "9"
    other = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "2026-01-02T10:00:00Z",
                        "data": {"name": "someone.else", "alias": "champion", "version": "1"}}).encode()
    assert _post(url, other, _signed(other)) == 200 and len(_rows(lake)) == 1  # not a Looper model


def test_the_command_refuses_to_start_without_a_secret(monkeypatch, capsys):
    from looper_common.cli import main

    monkeypatch.delenv("LOOPER_MLFLOW_WEBHOOK_SECRET", raising=False)
    assert main(["alias-webhook", "--port", str(_free_port())]) == 2
    assert "set LOOPER_MLFLOW_WEBHOOK_SECRET" in capsys.readouterr().err
