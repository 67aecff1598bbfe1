"""The watermark sensor's poke, for real: it drains the stream with the ingest job and reads the watermark."""

from __future__ import annotations

import os
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from looper_common.contracts import events
from looper_common.dagfactory.blueprint_dag import poke_watermark as poke
from looper_common.ingest.watermark import read_watermarks
from looper_common.lake.engine import Lake
from tests.conftest import ROOT

pytestmark = pytest.mark.integration


def test_poke_ingests_until_the_watermark_passes_the_deadline(tmp_path, redis_url, redis_client):
    arrived = datetime(2026, 1, 2, 23, 30, tzinfo=UTC)
    stream = events.stream_key("notification_send")
    redis_client.xadd(stream, {"e": "{not json"}, id=f"{int(arrived.timestamp() * 1000)}-0")
    lake_root = str(tmp_path / "lake")
    env = {"LOOPER_HOME": str(ROOT), "LOOPER_LAKE_ROOT": lake_root, "LOOPER_REDIS_URL": redis_url,
           "LOOPER_ENV": "local", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    ingest = [sys.executable, str(ROOT / "jobs" / "ingest_events.py"), "--blueprint", "notification_send"]

    # nothing recorded yet: the poke drains the stream (one entry, quarantined), then the watermark is "now"
    assert poke("notification_send", "2026-01-02", 3600, lake_root, ingest, env)
    mark = read_watermarks(Lake(lake_root))["notification_send"]
    assert mark > datetime.now(UTC) - timedelta(minutes=5)
    assert redis_client.xlen(stream) == 0
    # a day whose end plus the lateness is still ahead: the poke says no (after one more drain)
    tomorrow = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    assert not poke("notification_send", tomorrow, 3600, lake_root, ingest, env)
    assert read_watermarks(Lake(lake_root))["notification_send"] >= mark
    assert date.fromisoformat(tomorrow) > mark.date()
