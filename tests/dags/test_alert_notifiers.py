"""The monitor task's failure reaches the team through Airflow's notifiers, configured by environment."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_notifier_unless_configured(monkeypatch):
    monkeypatch.delenv("LOOPER_ALERT_WEBHOOK_CONN", raising=False)
    monkeypatch.delenv("LOOPER_ALERT_EMAIL", raising=False)
    task = _dagbag().dags["looper_notification_send"].get_task("monitor_blueprint")
    assert not task.on_failure_callback


def test_the_monitor_task_notifies_the_configured_webhook_and_mail(monkeypatch):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from looper_common.monitoring.notify import WebhookNotifier

    monkeypatch.setenv("LOOPER_ALERT_WEBHOOK_CONN", "looper_alerts")
    monkeypatch.setenv("LOOPER_ALERT_EMAIL", "team@example.com, oncall@example.com")
    dag = _dagbag().dags["looper_notification_send"]
    callbacks = dag.get_task("monitor_blueprint").on_failure_callback
    assert [type(c) for c in callbacks] == [WebhookNotifier, SmtpNotifier]
    assert callbacks[0].conn_id == "looper_alerts" and callbacks[1].to == ["team@example.com", "oncall@example.com"]
    assert not dag.get_task("publish_policies").on_failure_callback  # the hook is the monitor's


@pytest.fixture
def webhook():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()
    thread.join(5)


def test_webhook_notifier_posts_the_failure(webhook, monkeypatch):
    from looper_common.monitoring.notify import WebhookNotifier

    port, received = webhook
    monkeypatch.setenv("AIRFLOW_CONN_LOOPER_ALERTS", f"http://:s3cret@127.0.0.1:{port}/hooks%2Flooper")
    ti = SimpleNamespace(dag_id="looper_notification_send", task_id="monitor_blueprint", run_id="r1", log_url=None)
    notifier = WebhookNotifier("looper_alerts", text="monitor failed")
    notifier.notify({"ti": ti})
    [(path, auth, body)] = received
    assert path == "/hooks/looper" and auth == "Bearer s3cret"
    assert body == {"text": "monitor failed", "dag_id": "looper_notification_send", "task_id": "monitor_blueprint",
                    "run_id": "r1", "log_url": None}
