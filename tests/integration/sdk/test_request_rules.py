"""The SDK refuses at call time, before anything is sent, what ingestion would quarantine (real redis-server)."""

from __future__ import annotations

import importlib.util
import math
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from looper_common.contracts import events
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE
from looper_common.sdk.client import LooperClient, LooperError
from tests.conftest import FEATURES, ROOT, make_blueprint

pytestmark = pytest.mark.integration
STREAM = events.stream_key("t_notify")


@pytest.fixture
def client(redis_url, redis_client):
    blueprint = make_blueprint()
    return LooperClient(redis_url, blueprints={blueprint.name: blueprint})


@pytest.mark.parametrize(
    ("unit_id", "features", "ts", "message"),
    [
        ("u1", {**FEATURES, "recency": math.nan}, None, "features: recency is not a finite number"),
        ("u1", {**FEATURES, "country": "\ud800"}, None, "features: country is not valid Unicode"),
        ("\udfff", FEATURES, None, "unit_id: not valid Unicode"),
        (b"raw", FEATURES, None, "unit_id: expected a string, got a bytes"),
        (7, FEATURES, None, "unit_id: expected a string, got the number 7"),
        ("u1", FEATURES, 1e20, "ts: 100000000000000000000 is outside years 1-9999"),
        ("u1", FEATURES, math.inf, "ts: inf is not a finite number"),
        ("u1", {**FEATURES, "country": "x" * 70_000}, None, "exceeds max_event_bytes"),
    ],
)
def test_get_decision_refuses_and_sends_nothing(client, redis_client, unit_id, features, ts, message):
    with pytest.raises(LooperError, match=message):
        client.get_decision("t_notify", unit_id, features, ts=ts)
    assert redis_client.exists(STREAM) == 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_log_observations_refuses_a_non_finite_value(client, redis_client, value):
    decision = client.get_decision("t_notify", "u1", FEATURES)
    with pytest.raises(LooperError, match="observation 'click': value: .* is not a finite number"):
        client.log_observations(decision.decision_id, {"click": value})
    assert redis_client.xlen(STREAM) == 1  # the decision only


@pytest.mark.parametrize(
    ("decision_id", "message"),
    [
        (7, "decision_id: expected a string, got the number 7"),
        (None, r"missing field\(s\): decision_id"),
        (b"raw", "decision_id: expected a string, got a bytes"),
        ("\ud800", r"decision_id: not valid Unicode \(a lone surrogate\)"),
        ("d" * 70_000, r"payload: \d+ bytes exceeds max_event_bytes \(65536\)"),
    ],
    ids=["int", "None", "bytes", "lone surrogate", "oversize"],
)
def test_log_observations_refuses_a_bad_decision_id_and_sends_nothing(client, redis_client, decision_id, message):
    decision = client.get_decision("t_notify", "u1", FEATURES)
    with pytest.raises(LooperError, match=message):
        client.log_observations(decision_id, {"click": 1}, blueprint="t_notify")
    with pytest.raises(LooperError, match=message):  # the good item before it is not sent either
        client.log_observations_batch([(decision.decision_id, {"click": 1}, None), (decision_id, {"click": 1}, None)],
                                      blueprint="t_notify")
    if isinstance(decision_id, str) and decision_id.isascii():  # the blueprint found from the id: the same error
        with pytest.raises(LooperError, match=message):
            client.log_observations_batch([(decision_id[:-6] + decision.decision_id[-6:], {"click": 1}, None)])
    assert redis_client.xlen(STREAM) == 1  # the decision only


def _ingest_job(argv: list[str]) -> int:
    """``jobs/ingest_events.py``'s main, in this process."""
    spec = importlib.util.spec_from_file_location("ingest_events_job", ROOT / "jobs" / "ingest_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_a_client_reading_the_settings_applies_the_configured_ingest_limits(
    tmp_path, redis_url, redis_client, monkeypatch
):
    """Limits lower than the defaults in conf/<env>.yaml: the SDK refuses what ingestion would quarantine."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "blueprints").mkdir()
    shutil.copy(ROOT / "blueprints" / "notification_send.yaml", tmp_path / "blueprints")
    (tmp_path / "conf" / "local.yaml").write_text(
        f"lake_root: lake\nblueprints_dir: blueprints\nredis: {{url: '{redis_url}'}}\n"
        "ingest: {max_event_bytes: 4000, ts_max_past_days: 1, ts_max_future_s: 60}\n"
    )
    monkeypatch.setenv("LOOPER_HOME", str(tmp_path))
    client = LooperClient()  # no redis_url or blueprints: the settings are read
    features = {"days_since_last_visit": 2.5, "sessions_last_7d": 3, "push_opt_in": True, "country": "us",
                "platform": "ios"}
    now = datetime.now(UTC)
    accepted = [client.get_decision("notification_send", "u1", features),
                client.get_decision("notification_send", "u2", {**features, "country": "x" * 100},
                                    ts=now - timedelta(hours=12))]
    client.log_observations(accepted[0].decision_id, {"click": 1})
    with pytest.raises(LooperError, match=r"exceeds max_event_bytes \(4000\)"):  # the default 65,536 allows it
        client.get_decision("notification_send", "u3", {**features, "country": "x" * 3_000})
    with pytest.raises(LooperError, match="ts: .* is more than 1 days before"):
        client.get_decision("notification_send", "u4", features, ts=now - timedelta(days=2))
    with pytest.raises(LooperError, match="ts: .* is more than 60 s after"):
        client.log_observations(accepted[0].decision_id, {"click": 1}, ts=now + timedelta(minutes=5))
    with pytest.raises(LooperError, match=r"payload: 4\d{3} bytes exceeds max_event_bytes \(4000\)"):
        client.log_observations("d" * 3_900 + accepted[0].decision_id[-6:], {"click": 1})
    assert client.close() == 0

    assert _ingest_job(["--blueprint", "notification_send"]) == 0
    lake = Lake(str(tmp_path / "lake"))
    decisions = lake.read(BRONZE_DECISIONS, columns=["decision_id"]).table["decision_id"].to_pylist()
    assert sorted(decisions) == sorted(d.decision_id for d in accepted)
    assert lake.read(BRONZE_OBSERVATIONS, columns=["decision_id"]).table.num_rows == 1
    assert lake.read(QUARANTINE, columns=["event_id"]).table.num_rows == 0
