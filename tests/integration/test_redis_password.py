"""The loop against a Redis with ``requirepass``, the password only in ``LOOPER_REDIS_PASSWORD``: the SDK
from the settings, ``jobs/ingest_events`` and ``jobs/publish_policies`` through their ``main``, the SDK served
the published policy, and the demo's reset; the password is in no output, log record or file they wrote."""

from __future__ import annotations

import importlib.util
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from jobs.ingest_events import main as ingest_job
from jobs.publish_policies import main as publish_job
from looper_common.contracts import events, policy_store, redis_conn
from looper_common.contracts.config import load_settings
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, ROOT
from tests.integration.publishing.test_publishing import (  # noqa: F401 (champion: a fixture)
    NAME,
    RUN_DATE,
    champion,
    job_home,
)

pytestmark = pytest.mark.integration
PASSWORD = "loop-pw-3c9e1d"
DECIDED_AT = datetime(2026, 1, 3, 10, tzinfo=UTC)


def _demo():
    spec = importlib.util.spec_from_file_location("looper_demo", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files_holding(folder: Path, secret: bytes) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_the_loop_works_against_requirepass_and_never_shows_the_password(
    redis_process, champion, tmp_path, monkeypatch, capfd, caplog  # noqa: F811
):
    server = redis_process(password=PASSWORD)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=server.port).ping()
    uri, _ = champion
    home = Path(job_home(tmp_path, {
        "lake_root": "var/lake", "redis": {"url": server.url},  # the URL carries no password
        "mlflow": {"tracking_uri": uri}, "spark": {"jars_dir": str(ROOT / ".jars")},
    }))
    monkeypatch.setenv("LOOPER_HOME", str(home))
    monkeypatch.setenv("LOOPER_REDIS_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)

    client = LooperClient()  # url, blueprints and the password from the settings and the environment
    units = [(f"user{i}", {**FEATURES, "recency": float(i), "country": ["us", "de", "fr"][i % 3]}) for i in range(30)]
    decisions = client.get_decisions(NAME, units, ts=DECIDED_AT)
    assert {d.default_reason for d in decisions} == {events.NO_POLICY}
    client.log_observations_batch([(d.decision_id, {"click": 1}, DECIDED_AT) for d in decisions[:10]])
    assert client.close() == 0 and client.stats()["events_sent"] == 40

    assert ingest_job(["--blueprint", NAME]) == 0
    lake = Lake(str(home / "var" / "lake"))
    assert lake.read(BRONZE_DECISIONS, columns=["event_id"]).table.num_rows == 30
    assert lake.read(BRONZE_OBSERVATIONS, columns=["event_id"]).table.num_rows == 10
    assert lake.read(QUARANTINE, columns=["event_id"]).table.num_rows == 0
    assert server.client.xlen(events.stream_key(NAME)) == 0

    assert publish_job(["--blueprint", NAME, "--run-date", RUN_DATE.isoformat()]) == 0
    captured = [capfd.readouterr()]
    version = captured[0].out.strip().splitlines()[-1]
    assert server.client.get(policy_store.active_key(NAME)) == version.encode()
    served = LooperClient(pointer_ttl_s=0.0).get_decisions(NAME, units)
    assert {(d.is_default, d.policy_version) for d in served} == {(False, version)}

    settings = load_settings()
    _demo().reset_stores(settings, redis_conn.from_settings(settings.redis), NAME)
    assert server.client.keys(f"*{NAME}*") == [k for k in server.client.keys(f"*{NAME}*")
                                               if k.startswith(b"looper:sdk:")]  # only the SDK's counters
    assert not (home / "var" / "lake").exists()

    captured.append(capfd.readouterr())
    out, err = "".join(c.out for c in captured), "".join(c.err for c in captured)
    assert version in out and "active None -> " in caplog.text  # what the jobs said is here
    for text in (out, err, caplog.text, *(r.getMessage() for r in caplog.records)):
        assert PASSWORD not in text
    assert _files_holding(home, PASSWORD.encode()) == []
    assert _files_holding(Path(uri.removeprefix("sqlite:///")).parent, PASSWORD.encode()) == []
