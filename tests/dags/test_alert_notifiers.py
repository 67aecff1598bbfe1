"""The monitor task's failure reaches the team through Airflow's notifiers, configured by environment."""

from __future__ import annotations

import json
import socketserver
import threading
from datetime import date
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
    from looper_common.monitoring.notify import AlertMailNotifier, WebhookNotifier

    monkeypatch.setenv("LOOPER_ALERT_WEBHOOK_CONN", "looper_alerts")
    monkeypatch.setenv("LOOPER_ALERT_EMAIL", "team@example.com, oncall@example.com")
    dag = _dagbag().dags["looper_notification_send"]
    callbacks = dag.get_task("monitor_blueprint").on_failure_callback
    assert [type(c) for c in callbacks] == [WebhookNotifier, AlertMailNotifier]
    assert callbacks[0].conn_id == "looper_alerts" and callbacks[1].to == ["team@example.com", "oncall@example.com"]
    assert {c.report.blueprint for c in callbacks} == {"notification_send"}  # whose alerts the messages list
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
    from looper_common.contracts.config import load_settings
    from looper_common.monitoring.notify import AlertMailNotifier, WebhookNotifier

    assert load_settings().alerts.webhook_conn == "yaml_alerts"
    callbacks = _dagbag().dags["looper_notification_send"].get_task("monitor_blueprint").on_failure_callback
    assert [type(c) for c in callbacks] == [WebhookNotifier, AlertMailNotifier]
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


@pytest.fixture
def lake_with_alerts(tmp_path, monkeypatch):
    """A lake whose monitoring/alerts holds a critical and a warning of notification_send on 2026-03-04."""
    from looper_common.lake.engine import Lake
    from looper_common.lake.tables import MONITOR_ALERTS
    from looper_common.monitoring.alerts import Alert, alert_rows

    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    alerts = [Alert("feature_psi", "country", 0.1234, 0.1, "warning"),
              Alert("default_share", None, 0.449, 0.3, "critical")]
    lake.replace_partition(MONITOR_ALERTS, alert_rows(alerts, "notification_send", date(2026, 3, 4)),
                           {"blueprint": "notification_send", "date": date(2026, 3, 4)})
    monkeypatch.setenv("LOOPER_HOME", str(ROOT))
    monkeypatch.setenv("LOOPER_LAKE_ROOT", lake.root)
    return lake


def _context(run_date: str | None = "2026-03-04"):
    ti = SimpleNamespace(dag_id="looper_notification_send", task_id="monitor_blueprint", run_id="r1", log_url=None)
    return {"ti": ti, "params": {"run_date": run_date}, "ds": "2026-03-05"}


def test_webhook_notifier_posts_the_failure_with_the_days_alerts(webhook, lake_with_alerts, monkeypatch):
    from looper_common.monitoring.notify import WebhookNotifier

    port, received = webhook
    monkeypatch.setenv("AIRFLOW_CONN_LOOPER_ALERTS", f"http://:s3cret@127.0.0.1:{port}/hooks%2Flooper")
    notifier = WebhookNotifier("looper_alerts", text="monitor failed", blueprint="notification_send")
    notifier.notify(_context())
    [(path, auth, body)] = received
    assert path == "/hooks/looper" and auth == "Bearer s3cret"
    assert body["text"] == ("monitor failed\n2 alert(s) for notification_send on 2026-03-04:\n"
                            "- critical default_share = 0.449 (threshold 0.3)\n"
                            "- warning feature_psi of country = 0.1234 (threshold 0.1)")
    assert body["alerts"] == [
        {"severity": "critical", "check": "default_share", "subject": None, "value": 0.449, "threshold": 0.3},
        {"severity": "warning", "check": "feature_psi", "subject": "country", "value": 0.1234, "threshold": 0.1}]
    assert {k: body[k] for k in ("dag_id", "task_id", "run_id", "log_url", "blueprint", "run_date")} == {
        "dag_id": "looper_notification_send", "task_id": "monitor_blueprint", "run_id": "r1", "log_url": None,
        "blueprint": "notification_send", "run_date": "2026-03-04"}


def test_a_stage_dags_notifier_lists_the_alerts_of_each_of_its_blueprints(webhook, lake_with_alerts, monkeypatch):
    from looper_common.monitoring.notify import WebhookNotifier

    port, received = webhook
    monkeypatch.setenv("AIRFLOW_CONN_LOOPER_ALERTS", f"http://127.0.0.1:{port}/hooks")
    WebhookNotifier("looper_alerts", text="monitor failed", blueprint=["feed_layout", "notification_send"]).notify(
        _context())
    [(_, _, body)] = received
    assert body["blueprint"] == "feed_layout, notification_send"
    assert body["text"].splitlines()[1:] == [
        "2 alert(s) for feed_layout, notification_send on 2026-03-04:",
        "- critical default_share of notification_send = 0.449 (threshold 0.3)",
        "- warning feature_psi of notification_send: country = 0.1234 (threshold 0.1)"]


def test_webhook_notifier_says_when_the_day_has_no_alert_or_they_cannot_be_read(webhook, lake_with_alerts,
                                                                                monkeypatch):
    from looper_common.monitoring.notify import WebhookNotifier

    port, received = webhook
    monkeypatch.setenv("AIRFLOW_CONN_LOOPER_ALERTS", f"http://127.0.0.1:{port}/hooks")
    notifier = WebhookNotifier("looper_alerts", text="monitor failed")  # blueprint from the DAG id
    notifier.notify(_context(None))  # no run_date param: the logical date, a day without alerts
    notifier.notify(_context("not-a-date"))
    [(_, auth, quiet), (_, _, broken)] = received
    assert auth is None and quiet["alerts"] == [] and quiet["run_date"] == "2026-03-05"
    assert quiet["text"] == "monitor failed\nno alert recorded for the day: the task failed before writing them"
    assert broken["alerts"] == [] and broken["text"].startswith(
        "monitor failed\nthe alerts could not be read (ValueError: Invalid isoformat string: 'not-a-date')")


@pytest.fixture
def smtp_server():
    """A minimal SMTP server on 127.0.0.1 that keeps every message's DATA (enough for smtplib)."""
    messages: list[str] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"220 localhost ESMTP test\r\n")
            while line := self.rfile.readline():
                verb = line.decode().strip().split(" ")[0].upper()
                if verb == "DATA":
                    self.wfile.write(b"354 go ahead\r\n")
                    data = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data.append(chunk.decode())
                    messages.append("".join(data))
                    self.wfile.write(b"250 queued\r\n")
                elif verb == "QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                elif verb in ("EHLO", "HELO"):
                    self.wfile.write(b"250 localhost\r\n")
                else:
                    self.wfile.write(b"250 ok\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], messages
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_mail_lists_the_days_alerts(smtp_server, lake_with_alerts, monkeypatch):
    import email
    from email import policy

    from looper_common.monitoring.notify import AlertMailNotifier

    port, messages = smtp_server
    extra = "disable_ssl=true&disable_tls=true&from_email=looper%40example.com&retry_limit=0"
    monkeypatch.setenv("AIRFLOW_CONN_LOOPER_SMTP", f"smtp://127.0.0.1:{port}?{extra}")
    notifier = AlertMailNotifier(["team@example.com"], "looper_smtp", blueprint="notification_send")
    notifier.notify(_context())
    [raw] = messages
    mail = email.message_from_string(raw, policy=policy.default)
    assert mail["To"] == "team@example.com"
    assert mail["Subject"] == "Looper: looper_notification_send.monitor_blueprint failed for 2026-03-04"
    body = mail.get_body(("html",)).get_content()
    assert body == ("<p>2 alert(s) for notification_send on 2026-03-04:</p><ul>"
                    "<li>critical default_share = 0.449 (threshold 0.3)</li>"
                    "<li>warning feature_psi of country = 0.1234 (threshold 0.1)</li></ul>")
