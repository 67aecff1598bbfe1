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


ALERTS_YAML = """
alerts:
  webhook_conn: yaml_alerts
  email: [team@example.com]
  smtp_conn: yaml_smtp
"""


@pytest.fixture
def home_with_alerts(tmp_path, monkeypatch):
    """A project home whose conf/local.yaml is the shipped one plus an ``alerts:`` section."""
    (tmp_path / "conf").mkdir()
    shipped = (ROOT / "conf" / "local.yaml").read_text()
    head, _, tail = shipped.partition("\nalerts:\n")  # the shipped file's own section is replaced
    tail = tail.split("\n", 3)[-1] if tail else ""
    (tmp_path / "conf" / "local.yaml").write_text(head + "\n" + tail + ALERTS_YAML)
    (tmp_path / "blueprints").symlink_to(ROOT / "blueprints")
    for var in ("LOOPER_ALERT_WEBHOOK_CONN", "LOOPER_ALERT_EMAIL", "LOOPER_ALERT_SMTP_CONN", "LOOPER_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOOPER_HOME", str(tmp_path))
    return tmp_path


def test_the_notifiers_come_from_the_environment_yaml(home_with_alerts, monkeypatch):
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    from looper_common.contracts.config import load_settings
    from looper_common.monitoring.notify import WebhookNotifier

    assert load_settings().alerts.webhook_conn == "yaml_alerts"
    callbacks = _dagbag().dags["looper_notification_send"].get_task("monitor_blueprint").on_failure_callback
    assert [type(c) for c in callbacks] == [WebhookNotifier, SmtpNotifier]
    assert callbacks[0].conn_id == "yaml_alerts"
    assert callbacks[1].to == ["team@example.com"] and callbacks[1].smtp_conn_id == "yaml_smtp"
    # the environment overrides each value
    monkeypatch.setenv("LOOPER_ALERT_WEBHOOK_CONN", "env_alerts")
    monkeypatch.setenv("LOOPER_ALERT_EMAIL", "a@example.com, b@example.com")
    callbacks = _dagbag().dags["looper_notification_send"].get_task("monitor_blueprint").on_failure_callback
    assert callbacks[0].conn_id == "env_alerts"
    assert callbacks[1].to == ["a@example.com", "b@example.com"] and callbacks[1].smtp_conn_id == "yaml_smtp"


def test_a_bad_alerts_section_names_the_field(home_with_alerts):
    from looper_common.contracts.config import ConfigError, load_settings

    conf = home_with_alerts / "conf" / "local.yaml"
    conf.write_text(conf.read_text().replace("smtp_conn: yaml_smtp", "smtp_conn: yaml_smtp\n  slack: x"))
    with pytest.raises(ConfigError, match="alerts.slack: Extra inputs are not permitted"):
        load_settings()


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
