"""Airflow notifiers for the monitor task's failures (a critical alert fails it), chosen by the settings.

``alert_notifiers(settings.alerts)`` is read where the DAG file is parsed; the
``alerts:`` section of ``conf/<env>.yaml`` names Airflow connection ids, and the
environment overrides each value (``contracts/config.py`` OVERRIDES):

* ``webhook_conn`` / ``LOOPER_ALERT_WEBHOOK_CONN``: an Airflow connection id (e.g.
  ``AIRFLOW_CONN_LOOPER_ALERTS=https://hooks.example.com/looper``); :class:`WebhookNotifier`
  POSTs a JSON document ``{"text", "dag_id", "task_id", "run_id", "log_url"}`` to it, with
  the connection's password as a bearer token when it has one.
* ``email`` / ``LOOPER_ALERT_EMAIL``: recipients (comma-separated in the variable); the
  SMTP provider's ``SmtpNotifier`` sends through the connection ``smtp_conn`` /
  ``LOOPER_ALERT_SMTP_CONN`` (default ``smtp_default``).

With neither set, no notifier is attached: the failed task in the UI is the alert.
"""

from __future__ import annotations

import json
import urllib.request

from airflow.sdk import BaseNotifier, Connection

from looper_common.contracts.config import AlertSettings


def webhook_url(conn: Connection) -> str:
    """The URL an HTTP(S) connection names (``http``/``https`` type, host, port, path in ``schema``)."""
    scheme = "https" if (conn.conn_type or "").lower() in ("https", "webhook_https") else "http"
    host = conn.host or ""
    if "://" in host:
        return host
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema.lstrip('/')}" if conn.schema else ""
    return f"{scheme}://{host}{port}{path}"


class WebhookNotifier(BaseNotifier):
    """POST the failure of a Looper task, as JSON, to the URL of an Airflow connection."""

    template_fields = ("text",)

    def __init__(self, conn_id: str, text: str = "Looper: {{ ti.dag_id }}.{{ ti.task_id }} failed for "
                 "{{ params.run_date or ds }}", timeout_s: float = 10.0):
        super().__init__()
        self.conn_id, self.text, self.timeout_s = conn_id, text, timeout_s

    def notify(self, context) -> None:
        conn = Connection.get(self.conn_id)
        ti = context["ti"]
        body = json.dumps({"text": self.text, "dag_id": ti.dag_id, "task_id": ti.task_id,
                           "run_id": ti.run_id, "log_url": getattr(ti, "log_url", None)}).encode()
        headers = {"Content-Type": "application/json"}
        if conn.password:
            headers["Authorization"] = f"Bearer {conn.password}"
        request = urllib.request.Request(webhook_url(conn), data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()


def alert_notifiers(alerts: AlertSettings | None = None) -> list[BaseNotifier]:
    """The notifiers ``alerts`` asks for (default: the environment's settings); none by default."""
    if alerts is None:
        from looper_common.contracts.config import load_settings

        alerts = load_settings().alerts
    notifiers: list[BaseNotifier] = []
    if alerts.webhook_conn:
        notifiers.append(WebhookNotifier(alerts.webhook_conn))
    if alerts.email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(SmtpNotifier(
            to=list(alerts.email),
            smtp_conn_id=alerts.smtp_conn,
            subject="Looper: {{ ti.dag_id }}.{{ ti.task_id }} failed for {{ params.run_date or ds }}",
        ))
    return notifiers
