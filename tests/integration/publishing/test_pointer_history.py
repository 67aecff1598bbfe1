"""Every move of the active pointer is a row of ``gold/alias_history``, and an older run date never
moves it: the real publish_policies job and ``looper rollback`` on a real redis-server, MLflow on SQLite."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest

from jobs.publish_policies import main as publish_job
from looper_common.cli import main as looper
from looper_common.contracts import policy_store
from looper_common.lake.tables import ALIAS_HISTORY
from looper_common.publishing.publish import policy_version
from looper_common.publishing.redis_policy import meta_key, publish_policy
from looper_common.training.registry import ACTIVE_POLICY, live_at, policy_pointer
from tests.conftest import ROOT
from tests.integration.publishing.test_publishing import (  # noqa: F401 (champion: a fixture)
    BP,
    NAME,
    TTL,
    active,
    champion,
    job_home,
    logged_units,
    units_frame,
)

pytestmark = pytest.mark.integration
DAY1, DAY2, DAY3 = date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4)


def test_an_older_run_date_never_moves_the_pointer_and_the_log_says_why(redis_client, caplog):
    publish_policy(redis_client, BP, units_frame(5), version="day2", ttl_seconds=TTL, meta={"run_date": DAY2})
    with caplog.at_level(logging.WARNING, logger="looper_common.publishing.redis_policy"):
        old = publish_policy(redis_client, BP, units_frame(5, seed=1), version="day1", ttl_seconds=TTL,
                             meta={"run_date": DAY1})
    assert not old.switched and old.units == 0 and active(redis_client) == "day2"
    assert "version day1 is for an older run date than the active day2; not publishing it" in caplog.text
    # nothing of it written: no entry, no meta hash
    assert redis_client.keys(policy_store.entry_key(NAME, "day1", "*")) == []
    assert not redis_client.exists(policy_store.meta_key(NAME, "day1"))
    # the same day with another model moves it; so does a later day
    same_day = publish_policy(redis_client, BP, units_frame(5, seed=2), version="day2b", ttl_seconds=TTL,
                              meta={"run_date": DAY2})
    later = publish_policy(redis_client, BP, units_frame(5, seed=3), version="day3", ttl_seconds=TTL,
                           meta={"run_date": DAY3})
    assert same_day.switched and later.switched and active(redis_client) == "day3"


def test_what_was_live_at_time_t_across_publishes_an_older_rerun_and_a_rollback(
    lake, redis_client, redis_url, champion, tmp_path, monkeypatch, capsys  # noqa: F811
):
    uri, _ = champion
    logged_units(lake)
    monkeypatch.setenv("LOOPER_HOME", job_home(tmp_path, {
        "lake_root": lake.root, "redis": {"url": redis_url},
        "mlflow": {"tracking_uri": uri}, "spark": {"jars_dir": str(ROOT / ".jars")},
    }))
    v1, v2, v3 = (policy_version(day, 1, BP) for day in (DAY1, DAY2, DAY3))
    moments = [datetime.now(UTC)]

    def publish(day: date) -> str:
        assert publish_job(["--blueprint", NAME, "--run-date", day.isoformat()]) == 0
        moments.append(datetime.now(UTC))
        return capsys.readouterr().out.strip()

    assert publish(DAY1) == v1
    assert publish(DAY2) == v2
    assert publish(DAY1) == v2  # rerunning the older day: the pointer stays
    assert looper(["rollback", "--blueprint", NAME, "--reason", "bad sends"]) == 0
    moments.append(datetime.now(UTC))
    assert capsys.readouterr().out.strip() == f"{NAME}: active policy {v2} -> {v1}"
    assert publish(DAY2) == v1  # the rolled-back version is not published again
    assert publish(DAY3) == v3

    assert [live_at(lake, NAME, t) for t in moments] == [None, v1, v2, v2, v1, v1, v3]
    rows = lake.read(ALIAS_HISTORY, filters=[("model", "=", policy_pointer(NAME))]).table.sort_by("ts").to_pylist()
    assert [(r["alias"], r["previous_version"], r["version"]) for r in rows] == [
        (ACTIVE_POLICY, None, v1), (ACTIVE_POLICY, v1, v2), (ACTIVE_POLICY, v2, v1), (ACTIVE_POLICY, v1, v3)]
    assert [r["actor"].split(" (")[0] for r in rows] == [
        "publish_policies", "publish_policies", "looper rollback", "publish_policies"]
    assert rows[2]["reason"] == "bad sends" and rows[1]["reason"] == "published looper.t_notify.clicked v1"
    assert dict(rows[1]["metrics"]) == {"units": 30.0} and rows[1]["run_date"] == DAY2
    assert redis_client.hget(meta_key(NAME, v2), "run_date") == str(DAY2).encode()


def test_a_pointer_move_whose_row_was_lost_is_recorded_on_the_rerun(
    lake, redis_client, redis_url, champion, tmp_path, monkeypatch, capsys  # noqa: F811
):
    uri, _ = champion
    logged_units(lake)
    monkeypatch.setenv("LOOPER_HOME", job_home(tmp_path, {
        "lake_root": lake.root, "redis": {"url": redis_url},
        "mlflow": {"tracking_uri": uri}, "spark": {"jars_dir": str(ROOT / ".jars")},
    }))
    # the pointer moved (e.g. the job died after the switch, before its row was appended)
    publish_policy(redis_client, BP, units_frame(5), version="by-hand", ttl_seconds=TTL, meta={"run_date": DAY3})
    assert publish_job(["--blueprint", NAME, "--run-date", DAY1.isoformat()]) == 0  # older: not moved
    assert capsys.readouterr().out.strip() == "by-hand"
    assert live_at(lake, NAME, datetime.now(UTC)) == "by-hand"
    row = lake.read(ALIAS_HISTORY).table.to_pylist()[0]
    assert row["reason"] == "the active pointer was by-hand while the history said None: recorded when found"


def test_a_rollback_whose_record_cannot_be_written_moves_nothing(redis_client, redis_url, tmp_path, monkeypatch,
                                                                 capsys):
    publish_policy(redis_client, BP, units_frame(5), version="day1", ttl_seconds=TTL, meta={"run_date": DAY1})
    publish_policy(redis_client, BP, units_frame(5, seed=1), version="day2", ttl_seconds=TTL, meta={"run_date": DAY2})
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the lake's folder would be")
    monkeypatch.setenv("LOOPER_HOME", job_home(tmp_path, {
        "lake_root": str(blocker / "lake"), "redis": {"url": redis_url}, "spark": {"jars_dir": str(ROOT / ".jars")},
    }))
    assert looper(["rollback", "--blueprint", NAME]) == 1
    assert "gold/alias_history cannot be reached, nothing was moved" in capsys.readouterr().err
    assert active(redis_client) == "day2"
