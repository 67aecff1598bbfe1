"""Publishing policies to a real redis-server, rollback, and the champion end to end."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, date, datetime

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from looper_common.cli import main as looper
from looper_common.contracts import policy_store
from looper_common.decision_science.policies import policy_frame
from looper_common.ingest.json_values import feature_texts
from looper_common.lake.tables import BRONZE_DECISIONS
from looper_common.publishing.pointer import HISTORY_LENGTH, RollbackError, rollback
from looper_common.publishing.publish import find_champion, policy_version, publish_champion
from looper_common.publishing.redis_policy import encode_entries, meta_key, publish_policy
from looper_common.publishing.units import latest_units, load_units
from looper_common.sdk.client import LooperClient
from tests.conftest import FEATURES, ROOT, make_blueprint

pytestmark = pytest.mark.integration
BP = make_blueprint()
NAME = BP.name
TTL = 3600
RUN_DATE = date(2026, 1, 3)
MODEL = "looper.t_notify.clicked"


def units_frame(n: int, seed: int = 0, prefix: str = "u") -> pd.DataFrame:
    """A policy frame as ``policy_frame`` makes it, with random scores."""
    send = np.random.default_rng(seed).random(n)
    return pd.DataFrame({
        "unit_id": [f"{prefix}{i}" for i in range(n)],
        "action": np.where(send >= 0.5, "send", "skip"),
        "score_send": send,
        "score_skip": 1 - send,
    })


@pytest.fixture
def sdk(redis_url: str, redis_client: redis.Redis) -> LooperClient:
    return LooperClient(redis_url, blueprints={NAME: BP}, pointer_ttl_s=0.0)


def active(client: redis.Redis) -> str | None:
    raw = client.get(policy_store.active_key(NAME))
    return raw.decode() if raw is not None else None


def history(client: redis.Redis) -> list[str]:
    return [v.decode() for v in client.lrange(policy_store.history_key(NAME), 0, -1)]


def test_entries_are_encode_entry_with_ttl_and_the_pointer_switches(redis_client):
    units = units_frame(1000)

    stats = publish_policy(redis_client, BP, units, version="v1", ttl_seconds=TTL, batch_size=300,
                           meta={"model_version": "4"})

    assert (stats.units, stats.batches, stats.switched, stats.previous) == (1000, 4, True, None)
    assert active(redis_client) == "v1" and history(redis_client) == []
    keys = [policy_store.entry_key(NAME, "v1", u) for u in units["unit_id"]]
    expected = [
        policy_store.encode_entry(r.action, {"send": r.score_send, "skip": r.score_skip})
        for r in units.itertuples()
    ]
    assert redis_client.mget(keys) == expected
    assert all(0 < redis_client.ttl(k) <= TTL for k in keys[::97])
    meta = redis_client.hgetall(meta_key(NAME, "v1"))
    assert meta[b"units"] == b"1000" and meta[b"model_version"] == b"4"
    assert meta[b"blueprint_version"] == BP.version.encode() and b"published_at" in meta
    assert 0 < redis_client.ttl(meta_key(NAME, "v1")) <= TTL


def test_a_reader_never_sees_a_half_written_version(redis_client, redis_url, sdk):
    n = 20_000
    publish_policy(redis_client, BP, units_frame(n, seed=1), version="v1", ttl_seconds=TTL)
    first, last = "u0", f"u{n - 1}"  # entries are written in order: last present = complete
    seen: dict[str, int] = {}
    problems: list[str] = []
    stop = threading.Event()

    def read() -> None:
        reader = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            version = reader.get(policy_store.active_key(NAME)).decode()
            seen[version] = seen.get(version, 0) + 1
            for unit in (first, last):
                if reader.get(policy_store.entry_key(NAME, version, unit)) is None:
                    problems.append(f"raw read: {version} has no entry for {unit}")
            decision = sdk.get_decision(NAME, last, FEATURES)
            if decision.is_default or decision.policy_version not in ("v1", "v2"):
                problems.append(f"SDK: {decision.policy_version}, default {decision.is_default}")

    thread = threading.Thread(target=read)
    thread.start()
    try:
        stats = publish_policy(redis_client, BP, units_frame(n, seed=2), version="v2",
                               ttl_seconds=TTL, batch_size=1000)
        while seen.get("v2", 0) < 20 and thread.is_alive():
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(30)
    assert problems == []
    assert stats.switched and stats.batches == 20
    assert seen.get("v1", 0) > 0 and seen.get("v2", 0) >= 20  # it read during and after the switch


def test_a_refused_write_raises_and_the_pointer_stays(redis_client):
    publish_policy(redis_client, BP, units_frame(10, seed=5), version="v1", ttl_seconds=TTL)
    before = redis_client.config_get("maxmemory", "maxmemory-policy")
    redis_client.config_set("maxmemory-policy", "noeviction")
    redis_client.config_set("maxmemory", 1)  # below what is used: every write is refused (OOM)
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            publish_policy(redis_client, BP, units_frame(10, seed=6), version="v2", ttl_seconds=TTL)
    finally:
        redis_client.config_set("maxmemory", before["maxmemory"])
        redis_client.config_set("maxmemory-policy", before["maxmemory-policy"])
    assert active(redis_client) == "v1" and history(redis_client) == []
    assert redis_client.keys(policy_store.entry_key(NAME, "v2", "*")) == []


def test_rollback_restores_the_previous_version_and_a_rerun_does_not_undo_it(redis_client, sdk):
    old, new = units_frame(10, seed=3), units_frame(10, seed=4)
    publish_policy(redis_client, BP, old, version="v1", ttl_seconds=TTL)
    publish_policy(redis_client, BP, new, version="v2", ttl_seconds=TTL)
    assert sdk.get_decision(NAME, "u3", FEATURES).scores == pytest.approx(
        {"send": new.score_send[3], "skip": new.score_skip[3]})

    assert rollback(redis_client, NAME) == ("v2", "v1")

    served = sdk.get_decision(NAME, "u3", FEATURES)
    assert served.policy_version == "v1" and not served.is_default
    assert served.scores == pytest.approx({"send": old.score_send[3], "skip": old.score_skip[3]})
    assert history(redis_client) == []
    with pytest.raises(RollbackError, match="no previous policy version"):
        rollback(redis_client, NAME)
    rerun = publish_policy(redis_client, BP, new, version="v2", ttl_seconds=TTL)
    assert not rerun.switched and active(redis_client) == "v1"
    assert 0 < redis_client.ttl(meta_key(NAME, "v2")) <= TTL  # the mark kept the expiry
    newer = publish_policy(redis_client, BP, new, version="v3", ttl_seconds=TTL)
    assert newer.switched and history(redis_client) == ["v1"]


def test_rollback_refuses_an_expired_previous_version(redis_client):
    publish_policy(redis_client, BP, units_frame(5), version="v1", ttl_seconds=TTL)
    publish_policy(redis_client, BP, units_frame(5), version="v2", ttl_seconds=TTL)
    redis_client.delete(meta_key(NAME, "v1"))  # what its TTL does

    with pytest.raises(RollbackError, match="v1 has expired"):
        rollback(redis_client, NAME)
    assert active(redis_client) == "v2" and history(redis_client) == ["v1"]


def test_rollback_command(redis_client, redis_url, monkeypatch, capsys):
    monkeypatch.setenv("LOOPER_HOME", str(ROOT))
    monkeypatch.setenv("LOOPER_REDIS_URL", redis_url)
    assert looper(["rollback", "--blueprint", NAME]) == 1
    assert "no previous policy version" in capsys.readouterr().err
    publish_policy(redis_client, BP, units_frame(5), version="v1", ttl_seconds=TTL)
    publish_policy(redis_client, BP, units_frame(5), version="v2", ttl_seconds=TTL)

    assert looper(["rollback", "--blueprint", NAME]) == 0
    assert capsys.readouterr().out.strip() == f"{NAME}: active policy v2 -> v1"
    assert active(redis_client) == "v1"


def test_an_unknown_unit_gets_the_default(redis_client, sdk):
    publish_policy(redis_client, BP, units_frame(5), version="v1", ttl_seconds=TTL)
    decision = sdk.get_decision(NAME, "stranger", FEATURES)
    assert decision.is_default and decision.policy_version is None and decision.scores is None
    assert sdk.get_decision(NAME, "u1", FEATURES).policy_version == "v1"


def test_publishing_the_same_version_again_changes_nothing(redis_client):
    publish_policy(redis_client, BP, units_frame(50, seed=5), version="v1", ttl_seconds=TTL)
    publish_policy(redis_client, BP, units_frame(50, seed=6), version="v2", ttl_seconds=TTL)
    before = {k: redis_client.dump(k) for k in redis_client.keys("looper:policy:*")}

    again = publish_policy(redis_client, BP, units_frame(50, seed=6), version="v2", ttl_seconds=TTL)

    assert not again.switched and again.previous == "v2"
    assert history(redis_client) == ["v1"] and active(redis_client) == "v2"
    assert {k: redis_client.dump(k) for k in redis_client.keys("looper:policy:*")} == before


def test_history_keeps_the_latest_versions_newest_first(redis_client):
    for i in range(HISTORY_LENGTH + 5):
        publish_policy(redis_client, BP, units_frame(2), version=f"v{i}", ttl_seconds=TTL)
    kept = history(redis_client)
    assert len(kept) == HISTORY_LENGTH and kept[0] == f"v{HISTORY_LENGTH + 3}" and kept[-1] == "v4"


def test_bad_policy_frames_are_refused(redis_client):
    good = units_frame(3)
    assert encode_entries(good, BP)[1] == policy_store.encode_entry(
        good.action[1], {"send": good.score_send[1], "skip": good.score_skip[1]})
    cases = [
        (good.iloc[:0], "no units to publish"),
        (pd.concat([good, good]), "unit ids must be unique"),
        (good.assign(action=["send", "push", "skip"]), r"actions \['push'\] are not in"),
        (good.assign(score_send=[0.1, np.nan, 0.3]), "1 non-finite score"),
    ]
    for frame, message in cases:
        with pytest.raises(ValueError, match=message):
            publish_policy(redis_client, BP, frame, version="bad", ttl_seconds=TTL)
    assert redis_client.keys("*") == []


def test_policy_version_is_deterministic():
    version = policy_version(RUN_DATE, 4, BP)
    assert version == f"20260103-m4-{BP.version[:6]}" == policy_version(RUN_DATE, "4", BP)
    assert policy_version(RUN_DATE, 5, BP) != version


# -- the champion, end to end ------------------------------------------------------------


def _train(seed: int = 0, n: int = 600) -> Pipeline:
    """A tiny model over ``to_model_frame`` columns: clicks come from sends to opted-in users."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "recency": rng.exponential(3, n), "visits": rng.integers(0, 10, n).astype(float),
        "opted_in": rng.integers(0, 2, n).astype(float),
        "country": rng.choice(["us", "de", "fr"], n), "action": rng.choice(["send", "skip"], n),
    })
    logit = -1.5 + 2.5 * (frame.action == "send") * frame.opted_in - 0.2 * frame.recency
    clicked = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    encode = ColumnTransformer(
        [("categories", OneHotEncoder(handle_unknown="ignore"), ["country", "action"])],
        remainder="passthrough",
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression())]).fit(frame, clicked)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory):
    """A registered ``looper.t_notify.clicked`` with the alias champion, on SQLite."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("publishing", artifact_location=str(folder / "artifacts"))
    model = _train()
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=MODEL)
    version = info.registered_model_version
    mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", version)
    yield uri, model
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def job_home(tmp_path, settings: dict) -> str:
    """A LOOPER_HOME with ``settings`` as conf/local.yaml and the test blueprint."""
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    (home / "blueprints").mkdir()
    (home / "blueprints" / f"{NAME}.yaml").write_text(yaml.safe_dump(BP.model_dump(mode="json")))
    (home / "conf" / "local.yaml").write_text(yaml.safe_dump(settings))
    return str(home)


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def bronze(decisions: list[tuple[str, str, dict, datetime]], blueprint: str = NAME) -> pa.Table:
    """``(decision_id, unit_id, features, ts)`` as bronze decision rows, features as ingestion writes them."""
    return pa.Table.from_pylist([
        {"event_id": f"e-{decision_id}", "decision_id": decision_id, "blueprint": blueprint,
         "blueprint_version": BP.version, "unit_id": unit, "ts": ts, "features": feature_texts(features),
         "action": "skip", "propensity": 0.9, "action_probs": {"send": 0.1, "skip": 0.9}, "scores": None,
         "policy_version": None, "is_default": True, "date": ts.date()}
        for decision_id, unit, features, ts in decisions
    ], schema=BRONZE_DECISIONS.schema)


def write_bronze(lake, rows: pa.Table) -> None:
    partitions = {column: sorted(set(rows[column].to_pylist())) for column in BRONZE_DECISIONS.partition_by}
    assert lake.insert_new(BRONZE_DECISIONS, rows, partitions) == rows.num_rows


def logged_units(lake) -> dict[str, dict]:
    """Two decisions of each of 30 units up to the run date, more after it; returns each unit's latest features."""
    latest, decisions = {}, []
    for i in range(30):
        latest[f"user{i}"] = {**FEATURES, "recency": float(i), "opted_in": i % 2 == 0,
                              "country": ["us", "de", "fr"][i % 3]}
        decisions.append((f"a{i:02d}", f"user{i}", {**FEATURES, "visits": 99}, at(1, 9)))  # older
        decisions.append((f"b{i:02d}", f"user{i}", latest[f"user{i}"], at(3 - i % 2, 10)))
    decisions.append(("c00", "user0", {**FEATURES, "visits": 77}, at(4, 0)))  # after the run date
    decisions.append(("c01", "late", FEATURES, at(4, 1)))  # known only after the run date
    decisions.append(("c02", "user5", {**FEATURES, "visits": 55}, at(3, 23)))  # latest at the same time as ...
    decisions.append(("c03", "user5", {**FEATURES, "visits": 56}, at(3, 23)))  # ... this one: the larger id wins
    latest["user5"] = {**FEATURES, "visits": 56}
    write_bronze(lake, bronze(decisions))
    write_bronze(lake, bronze([("o1", "user1", {**FEATURES, "visits": 11}, at(3, 12))], blueprint="t_other"))
    return latest


def test_latest_units_are_the_same_on_delta_rs_and_spark(spark, lake):
    latest = logged_units(lake)
    on_spark = dataclasses.replace(lake, local_read_max_bytes=0)
    units = load_units(lake, BP, RUN_DATE)
    assert sorted(units["unit_id"]) == sorted(latest)
    by_unit = units.set_index("unit_id")
    assert by_unit.loc["user0", "visits"] == 3 and by_unit.loc["user3", "recency"] == 3.0
    assert by_unit.loc["user1", "opted_in"] == False and by_unit.loc["user2", "country"] == "fr"  # noqa: E712
    assert by_unit.loc["user1", "visits"] == 3  # not t_other's decision
    assert by_unit.loc["user5", "visits"] == 56
    assert by_unit.loc["user4", "features_ts"] == pd.Timestamp(datetime(2026, 1, 3, 10))  # naive UTC
    assert list(units.columns) == ["unit_id", "features_ts", "recency", "visits", "opted_in", "country"]
    for run_date in (RUN_DATE, date(2026, 1, 1), date(2026, 1, 4)):
        expected = load_units(lake, BP, run_date).sort_values("unit_id", ignore_index=True)
        got = load_units(on_spark, BP, run_date).sort_values("unit_id", ignore_index=True)
        assert len(got) == {RUN_DATE: 30, date(2026, 1, 1): 30, date(2026, 1, 4): 31}[run_date]
        pd.testing.assert_frame_equal(got, expected)
    before = date(2025, 12, 31)  # no decision yet: an empty frame of the same columns on both engines
    pd.testing.assert_frame_equal(load_units(on_spark, BP, before), load_units(lake, BP, before))
    assert load_units(lake, BP, before).empty


def test_latest_units_of_no_decisions_is_an_empty_typed_table():
    empty = latest_units(BRONZE_DECISIONS.schema.empty_table(), BP, RUN_DATE)
    assert empty.num_rows == 0 and empty.schema.names == ["unit_id", "features_ts", *[f.name for f in BP.features]]


def test_publish_champion_from_bronze_decisions_to_what_the_sdk_serves(
    lake, redis_client, redis_url, sdk, champion, tmp_path, monkeypatch, capsys
):
    uri, model = champion
    latest = logged_units(lake)

    mv = find_champion(uri, BP)
    model_uri = f"models:/{MODEL}/{mv.version}"
    stats = publish_champion(lake, redis_client, BP, RUN_DATE, model_uri=model_uri,
                             model_version=mv.version, ttl_seconds=TTL, redis_url=redis_url)

    version = policy_version(RUN_DATE, mv.version, BP)
    assert stats.version == version and stats.units == 30 and active(redis_client) == version
    wide = pd.DataFrame([{"unit_id": u, **f} for u, f in latest.items()])
    expected = policy_frame(model, wide, BP).set_index("unit_id")
    for unit in ("user0", "user1", "user2", "user5", "user7"):
        served = sdk.get_decision(NAME, unit, latest[unit])
        assert served.policy_version == version and not served.is_default
        assert served.scores == pytest.approx(
            {"send": expected.loc[unit, "score_send"], "skip": expected.loc[unit, "score_skip"]})
        greedy = policy_store.decode_entry(
            redis_client.get(policy_store.entry_key(NAME, version, unit)))[0]
        assert greedy == expected.loc[unit, "action"]
    assert sdk.get_decision(NAME, "late", FEATURES).is_default
    assert redis_client.hget(meta_key(NAME, version), "model_uri") == model_uri.encode()

    # The job: a rerun for the same date with the same champion is the same version, no change.
    from jobs.publish_policies import main

    monkeypatch.setenv("LOOPER_HOME", job_home(tmp_path, {
        "lake_root": lake.root, "redis": {"url": redis_url},
        "mlflow": {"tracking_uri": uri}, "spark": {"jars_dir": str(ROOT / ".jars")},
    }))
    history_before = history(redis_client)
    assert main(["--blueprint", NAME, "--run-date", RUN_DATE.isoformat()]) == 0
    assert capsys.readouterr().out.strip() == version
    assert history(redis_client) == history_before and active(redis_client) == version
    week = 7 * 86_400  # conf: redis.policy_ttl_days
    assert week - 60 < redis_client.ttl(policy_store.entry_key(NAME, version, "user1")) <= week


def test_without_a_champion_the_job_keeps_the_default(redis_client, redis_url, tmp_path,
                                                      monkeypatch):
    from jobs.publish_policies import main

    monkeypatch.setenv("LOOPER_HOME", job_home(tmp_path, {
        "redis": {"url": redis_url}, "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/empty.db"},
    }))

    assert main(["--blueprint", NAME, "--run-date", RUN_DATE.isoformat()]) == 0
    assert redis_client.keys("looper:policy:*") == []


def policy_state(client: redis.Redis) -> dict[bytes, object]:
    """Every policy key with its value (entries) or fields (meta hashes, without the publish time)."""
    state: dict[bytes, object] = {}
    for key in sorted(client.keys("looper:policy:*")):
        kind = client.type(key)
        if kind == b"string":
            state[key] = client.get(key)
        elif kind == b"hash":
            state[key] = {f: v for f, v in client.hgetall(key).items() if f != b"published_at"}
        else:
            state[key] = client.lrange(key, 0, -1)
    return state


def test_publishing_on_spark_executors_writes_the_same_entries_as_on_the_driver(
    spark, lake, redis_client, redis_url, champion
):
    uri, _ = champion
    logged_units(lake)
    mv = find_champion(uri, BP)
    publish = dict(model_uri=f"models:/{MODEL}/{mv.version}", model_version=mv.version, ttl_seconds=TTL,
                   redis_url=redis_url)

    local = publish_champion(lake, redis_client, BP, RUN_DATE, **publish)
    on_driver = policy_state(redis_client)
    redis_client.flushdb()
    on_spark = dataclasses.replace(lake, local_read_max_bytes=0)  # every read above the limit: Spark
    distributed = publish_champion(on_spark, redis_client, BP, RUN_DATE, **publish)

    assert (distributed.units, distributed.version, distributed.switched) == (30, local.version, True)
    assert local.units == 30 and distributed.batches >= 1
    entries = [k for k in on_driver if k.startswith(policy_store.entry_key(NAME, local.version, "").encode())]
    assert len(entries) == 30
    assert policy_state(redis_client) == on_driver
    assert redis_client.get(policy_store.active_key(NAME)) == local.version.encode()


def test_publishing_nothing_on_spark_leaves_the_pointer(spark, lake, redis_client, redis_url, champion):
    uri, _ = champion
    logged_units(lake)
    mv = find_champion(uri, BP)
    on_spark = dataclasses.replace(lake, local_read_max_bytes=0)
    with pytest.raises(ValueError, match="no decisions up to 2025-12-31"):
        publish_champion(on_spark, redis_client, BP, date(2025, 12, 31), model_uri=f"models:/{MODEL}/{mv.version}",
                         model_version=mv.version, ttl_seconds=TTL, redis_url=redis_url)
    assert redis_client.get(policy_store.active_key(NAME)) is None
