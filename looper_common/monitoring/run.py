"""``monitor_blueprint``: the monitor task of one blueprint and run date.

Measures and records every check (``monitor.record_day``), writes the dashboard under
the folder next to the lake root (``var/monitoring/<blueprint>/<date>/dashboard.html``
on the embedded stack) and logs it, with the day's headline numbers, to the MLflow run
``monitor <date>`` of the blueprint's experiment (the same run again on a rerun).
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from looper_common.contracts import redis_conn
from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import Settings
from looper_common.jobrunner import loading_libraries
from looper_common.lake.engine import Lake
from looper_common.monitoring.monitor import MonitorRun, record_day

log = logging.getLogger(__name__)
JOB = "monitor_blueprint"


def dashboard_folder(settings: Settings) -> Path:
    """``<lake root>/../monitoring`` for a local lake; ``<home>/var/monitoring`` for one on an object store."""
    if "://" in settings.lake_root:
        return Path(settings.home) / "var" / "monitoring"
    return Path(settings.lake_root).resolve().parent / "monitoring"


def headline_metrics(run: MonitorRun) -> dict[str, float]:
    """The numbers worth a chart in MLflow: alert counts, default share, freshness, online reward."""
    out = {"alerts": float(len(run.alerts)), "alerts_critical": float(len(run.critical))}
    for name in ("default_share", "default_share_all", "feedback_age_h", "ingest_watermark_age_h",
                 "replay_mismatch", "propensity_mismatch"):
        value = run.value(name)
        if value is not None:
            out[name] = value
    for v in run.online:
        if v.name in ("policy", "default", "holdback", "outside_holdback", "lift_over_holdback") and v.mean is not None:
            out[f"online.{v.name}"] = v.mean
    return out


def log_to_mlflow(settings: Settings, run: MonitorRun, page: Path, blueprint: Blueprint) -> str:
    """Log the day's numbers and dashboard to the MLflow run of this monitor day; returns its id."""
    with loading_libraries():  # MLflow, and SQLAlchemy with MLflow's ORM models when the store opens
        import mlflow

        from looper_common.training.registry import configure_mlflow

        experiment = configure_mlflow(settings, blueprint.name)
    found = mlflow.search_runs(
        experiment_ids=[experiment], output_format="list",
        filter_string=f"tags.job = '{JOB}' and tags.run_date = '{run.run_date}'",
    )
    tags = {"job": JOB, "run_date": str(run.run_date), "blueprint_version": blueprint.version}
    with mlflow.start_run(run_id=found[0].info.run_id if found else None,
                          run_name=None if found else f"monitor {run.run_date}", tags=tags) as active:
        mlflow.log_metrics(headline_metrics(run))
        mlflow.log_artifact(str(page))
        return active.info.run_id


def monitor_blueprint(settings: Settings, lake: Lake, blueprint: Blueprint, run_date: date) -> MonitorRun:
    """Every check of ``blueprint`` on ``run_date``, its tables, dashboard and MLflow run."""
    with loading_libraries():  # matplotlib; what is loaded so far (settings, blueprints) is frozen too
        from looper_common.monitoring.dashboard import write_dashboard
    client = redis_conn.from_settings(settings.redis, socket_timeout=5)
    try:
        run = record_day(lake, blueprint, run_date, client)
    finally:
        client.close()
    run.dashboard = write_dashboard(lake, blueprint, run_date, dashboard_folder(settings))
    log.info("dashboard: %s (MLflow run %s)", run.dashboard, log_to_mlflow(settings, run, run.dashboard, blueprint))
    return run
