"""Airflow notifiers for the monitor task's failures (a critical alert fails it), chosen by the settings.

``alert_notifiers(settings.alerts, blueprint=..., env=..., home=...)`` is read where the
DAG file is parsed; the ``alerts:`` section of ``conf/<env>.yaml`` names Airflow
connection ids, and the environment overrides each value (``contracts/config.py``
OVERRIDES):

* ``webhook_conn`` / ``LOOPER_ALERT_WEBHOOK_CONN``: an Airflow connection id (e.g.
  ``AIRFLOW_CONN_LOOPER_ALERTS=https://hooks.example.com/looper``); :class:`WebhookNotifier`
  POSTs a JSON document ``{"text", "dag_id", "task_id", "run_id", "log_url", "blueprint",
  "run_date", "alerts"}`` to it, with the connection's password as a bearer token when it
  has one.
* ``email`` / ``LOOPER_ALERT_EMAIL``: recipients (comma-separated in the variable);
  :class:`AlertMailNotifier` mails through the SMTP provider's ``SmtpNotifier`` and the
  connection ``smtp_conn`` / ``LOOPER_ALERT_SMTP_CONN`` (default ``smtp_default``).

Both say which alerts the day raised (check, subject, value, threshold, severity, critical
first), read from ``monitoring/alerts`` for the blueprint and run date when the
notification is sent; when they cannot be read, the text says why and is sent anyway.
With neither set, no notifier is attached: the failed task in the UI is the alert.
"""

from __future__ import annotations

import html
import json
import logging
import urllib.request
from datetime import date

from airflow.sdk import BaseNotifier, Connection

from looper_common.contracts.config import AlertSettings

log = logging.getLogger(__name__)
ALERT_FIELDS = ("severity", "check", "subject", "value", "threshold")


def run_date_of(context) -> str:
    """The day the failed run processed: its ``run_date`` param, else its logical date (``ds``)."""
    return (context.get("params") or {}).get("run_date") or context.get("ds") or ""


def day_alerts(blueprint: str | list[str], run_date: str, env: str | None = None,
               home: str | None = None) -> list[dict]:
    """The alerts ``monitor_blueprint`` wrote for ``blueprint`` (or each of a list) and ``run_date``, critical first.

    For a list, each alert's ``subject`` is prefixed with its blueprint's name.
    """
    from looper_common.contracts.config import load_settings
    from looper_common.lake.engine import Lake
    from looper_common.lake.tables import MONITOR_ALERTS

    settings = load_settings(env, home)
    lake = Lake(settings.lake_root, storage_options=settings.lake_storage_options)
    names = [blueprint] if isinstance(blueprint, str) else list(blueprint)
    rows = lake.read(MONITOR_ALERTS, columns=[*ALERT_FIELDS, "blueprint"], filters=[
        ("date", "=", date.fromisoformat(run_date)), ("blueprint", "in", names)]).table.to_pylist()
    for row in rows:
        name = row.pop("blueprint")
        if not isinstance(blueprint, str):
            row["subject"] = f"{name}: {row['subject']}" if row["subject"] else name
    return sorted(rows, key=lambda r: (r["severity"] != "critical", r["check"], r["subject"] or ""))


def alert_line(alert: dict) -> str:
    """``critical default_share = 0.449 (threshold 0.3)``; the subject after ``of`` when there is one."""
    what = alert["check"] if not alert["subject"] else f"{alert['check']} of {alert['subject']}"
    return f"{alert['severity']} {what} = {alert['value']:.4g} (threshold {alert['threshold']:.4g})"


class _AlertReport:
    """What a notifier says about the failed monitor day: its alerts, or why they could not be read."""

    def __init__(self, blueprint: str | list[str] | None, env: str | None, home: str | None) -> None:
        self.blueprint, self.env, self.home = blueprint, env, home

    def read(self, context) -> tuple[str, str, list[dict], str]:
        """(blueprint (names joined with ", " for a list), run date, alerts, a text listing them)."""
        names = self.blueprint or context["ti"].dag_id.removeprefix("looper_")
        blueprint = names if isinstance(names, str) else ", ".join(names)
        run_date = run_date_of(context)
        try:
            alerts = day_alerts(names, run_date, self.env, self.home)
        except Exception as err:  # noqa: BLE001 (the notification goes out whatever the lake says)
            log.warning("could not read the alerts of %s on %s: %s", blueprint, run_date, err)
            return blueprint, run_date, [], f"the alerts could not be read ({type(err).__name__}: {err})"
        if not alerts:
            return blueprint, run_date, [], "no alert recorded for the day: the task failed before writing them"
        listed = "\n".join(f"- {alert_line(a)}" for a in alerts)
        return blueprint, run_date, alerts, f"{len(alerts)} alert(s) for {blueprint} on {run_date}:\n{listed}"


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
                 "{{ params.run_date or ds }}", timeout_s: float = 10.0, *, blueprint: str | list[str] | None = None,
                 env: str | None = None, home: str | None = None):
        """``text`` heads the message, the day's alerts follow; ``blueprint`` (default: the DAG id's
        suffix), ``env`` and ``home`` say whose alerts and which settings' lake."""
        super().__init__()
        self.conn_id, self.text, self.timeout_s = conn_id, text, timeout_s
        self._template = text
        self.report = _AlertReport(blueprint, env, home)

    def notify(self, context) -> None:
        conn = Connection.get(self.conn_id)
        ti = context["ti"]
        blueprint, run_date, alerts, listed = self.report.read(context)
        body = json.dumps({"text": f"{self.text}\n{listed}", "dag_id": ti.dag_id, "task_id": ti.task_id,
                           "run_id": ti.run_id, "log_url": getattr(ti, "log_url", None), "blueprint": blueprint,
                           "run_date": run_date, "alerts": alerts}).encode()
        headers = {"Content-Type": "application/json"}
        if conn.password:
            headers["Authorization"] = f"Bearer {conn.password}"
        request = urllib.request.Request(webhook_url(conn), data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        finally:
            self.text = self._template  # rendered in place for this call; the next failure renders its own


class AlertMailNotifier(BaseNotifier):
    """Mail the failure of the monitor task with the day's alerts, through the SMTP provider's ``SmtpNotifier``."""

    SUBJECT = "Looper: {{ ti.dag_id }}.{{ ti.task_id }} failed for {{ params.run_date or ds }}"

    def __init__(self, to: list[str], smtp_conn_id: str | None = None, *, blueprint: str | list[str] | None = None,
                 env: str | None = None, home: str | None = None):
        super().__init__()
        self.to, self.smtp_conn_id = to, smtp_conn_id
        self.report = _AlertReport(blueprint, env, home)

    def notify(self, context) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier  # optional provider: imported on use

        _, _, alerts, listed = self.report.read(context)
        items = "".join(f"<li>{html.escape(alert_line(a))}</li>" for a in alerts)
        body = f"<p>{html.escape(listed.splitlines()[0])}</p>" + (f"<ul>{items}</ul>" if items else "")
        # a new one per mail: a notifier renders its templates in place, once
        SmtpNotifier(to=self.to, smtp_conn_id=self.smtp_conn_id, subject=self.SUBJECT, html_content=body)(context)


def alert_notifiers(alerts: AlertSettings | None = None, *, blueprint: str | list[str] | None = None,
                    env: str | None = None, home: str | None = None) -> list[BaseNotifier]:
    """The notifiers ``alerts`` asks for (default: the environment's settings); none by default.

    ``blueprint``, ``env`` and ``home``: whose alerts the messages list, from which settings' lake.
    """
    if alerts is None:
        from looper_common.contracts.config import load_settings

        alerts = load_settings(env, home).alerts
    notifiers: list[BaseNotifier] = []
    if alerts.webhook_conn:
        notifiers.append(WebhookNotifier(alerts.webhook_conn, blueprint=blueprint, env=env, home=home))
    if alerts.email:
        notifiers.append(AlertMailNotifier(list(alerts.email), alerts.smtp_conn, blueprint=blueprint, env=env,
                                           home=home))
    return notifiers
