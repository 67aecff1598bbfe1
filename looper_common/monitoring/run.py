"""``monitor_blueprint``: the monitor task of one blueprint and run date, with its Redis client."""

from __future__ import annotations

from datetime import date

import redis

from looper_common.contracts.blueprint import Blueprint
from looper_common.contracts.config import Settings
from looper_common.lake.engine import Lake
from looper_common.monitoring.monitor import MonitorRun, record_day


def monitor_blueprint(settings: Settings, lake: Lake, blueprint: Blueprint, run_date: date) -> MonitorRun:
    """Every check of ``blueprint`` on ``run_date``, written to the monitoring tables."""
    client = redis.Redis.from_url(settings.redis.url, password=settings.redis.password, socket_timeout=5)
    try:
        return record_day(lake, blueprint, run_date, client)
    finally:
        client.close()
