"""Hybrid serving's batch-only features through the publish path: bronze → entries' ``"f"`` → SDK scores.

``publish_champion`` (what ``publish_policies`` runs) reads each unit's latest logged
features from bronze, scores them, and writes a ``source: batch`` feature's value into
the unit's entry; the SDK in hybrid mode fills it into requests that leave it out and
scores them with the compact model published beside the entries.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import skops.io

from looper_common.contracts import events, policy_store
from looper_common.decision_science.policies import policy_scores
from looper_common.ingest.json_values import feature_texts
from looper_common.lake.tables import BRONZE_DECISIONS
from looper_common.publishing.publish import publish_champion
from looper_common.sdk.client import LooperClient
from looper_common.training.examples import to_model_frame
from looper_common.training.families import build_model
from tests.conftest import make_blueprint

pytestmark = pytest.mark.integration
FEATURES = [{"name": "recency", "type": "float"}, {"name": "visits", "type": "int", "source": "batch"},
            {"name": "opted_in", "type": "bool"}, {"name": "country", "type": "category"}]
BP = make_blueprint(name="t_batch_feature", features=FEATURES, serving={"mode": "hybrid"})
RUN_DATE = date(2026, 1, 3)
UNITS = [f"user{i}" for i in range(24)]
NO_VISITS = "user23"  # its latest decision logged no visits: its entry has none to give


def request(i: int) -> dict[str, object]:
    """What product code passes today: the request features, visits left to the batch side."""
    return {"recency": float(i % 7), "opted_in": i % 2 == 0, "country": ["us", "de", "fr"][i % 3]}


def logged_visits(i: int) -> int:
    return 3 * i + 1


def write_bronze(lake) -> None:
    """Per unit an older decision (visits 99), the latest one, and one after the run date (visits 77)."""
    rows = []
    for i, unit in enumerate(UNITS):
        latest = {**request(i), "visits": logged_visits(i)}
        if unit == NO_VISITS:
            del latest["visits"]
        for key, features, ts in ((f"a{i}", {**latest, "visits": 99}, datetime(2026, 1, 1, 9, tzinfo=UTC)),
                                  (f"b{i}", latest, datetime(2026, 1, 3, 10, tzinfo=UTC)),
                                  (f"c{i}", {**latest, "visits": 77}, datetime(2026, 1, 4, 1, tzinfo=UTC))):
            rows.append({
                "event_id": f"e-{key}", "decision_id": key, "blueprint": BP.name,
                "blueprint_version": BP.version, "unit_id": unit, "ts": ts, "features": feature_texts(features),
                "action": "skip", "propensity": 0.9, "action_probs": {"send": 0.1, "skip": 0.9}, "scores": None,
                "policy_version": None, "is_default": True, "date": ts.date(),
            })
    table = pa.Table.from_pylist(rows, schema=BRONZE_DECISIONS.schema)
    partitions = {column: sorted(set(table[column].to_pylist())) for column in BRONZE_DECISIONS.partition_by}
    assert lake.insert_new(BRONZE_DECISIONS, table, partitions) == table.num_rows


def train(n: int = 2000):
    """A hist-GBDT on which visits decides the click: a send pays off only with many visits."""
    rng = np.random.default_rng(0)
    wide = pd.DataFrame({
        "recency": rng.exponential(3, n), "visits": rng.integers(0, 80, n).astype(float),
        "opted_in": rng.random(n) < 0.5, "country": rng.choice(["us", "de", "fr"], n),
        "action": rng.choice(["send", "skip"], n),
    })
    clicked = (rng.random(n) < np.where((wide.action == "send") & (wide.visits > 30), 0.8, 0.1)).astype(int)
    params = {"family": "hist_gbdt", "learning_rate": 0.1, "max_leaf_nodes": 16, "min_samples_leaf": 10,
              "l2_regularization": 0.01}
    model = build_model(params, "binary", ["country", "action"], ["recency", "visits", "opted_in"])
    return model.fit(to_model_frame(wide, BP), clicked)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory):
    """The model registered as ``looper.t_batch_feature.clicked`` (skops), on SQLite; yields (uri, model)."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder}/mlflow.db"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("batch_features", artifact_location=str(folder / "artifacts"))
    model = train()
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=f"looper.{BP.name}.clicked", serialization_format="skops",
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    yield f"models:/looper.{BP.name}.clicked/{info.registered_model_version}", model
    mlflow.set_tracking_uri(previous[0])
    mlflow.set_registry_uri(previous[1])


def publish(lake, redis_client, redis_url, model_uri: str):
    return publish_champion(lake, redis_client, BP, RUN_DATE, model_uri=model_uri, model_version=1,
                            ttl_seconds=600, redis_url=redis_url)


def entry(redis_client, version: str, unit: str) -> dict:
    return json.loads(redis_client.get(policy_store.entry_key(BP.name, version, unit)))


def test_published_entries_carry_the_units_batch_features_and_the_sdk_scores_with_them(
        lake, redis_client, redis_url, champion):
    model_uri, model = champion
    write_bronze(lake)
    stats = publish(lake, redis_client, redis_url, model_uri)
    assert stats.switched and stats.units == len(UNITS)
    for i, unit in enumerate(UNITS):  # the latest value up to the run date, not the older one or the later one
        expected = {} if unit == NO_VISITS else {"visits": logged_visits(i)}
        assert entry(redis_client, stats.version, unit)["f"] == expected, unit
    meta = redis_client.hgetall(policy_store.meta_key(BP.name, stats.version))
    assert b"compact_model" in meta  # hybrid: the compact model is published with the entries

    redis_client.delete(events.stream_key(BP.name))
    sdk = LooperClient(redis_url, blueprints={BP.name: BP}, pointer_ttl_s=0.0)
    requests = [(unit, request(i + 1)) for i, unit in enumerate(UNITS)]  # today's context, not the logged one
    decisions = sdk.get_decisions(BP.name, requests)
    assert sdk.close() == 0
    used = pd.DataFrame([{**features, "visits": float(logged_visits(i)) if unit != NO_VISITS else np.nan}
                         for i, (unit, features) in enumerate(requests)])
    offline = policy_scores(model, used, BP)
    for d, scores in zip(decisions, offline, strict=True):
        assert not d.is_default and d.policy_version == stats.version
        np.testing.assert_allclose([d.scores["send"], d.scores["skip"]], scores, rtol=0, atol=1e-6)
    # the batch feature moves the score: many visits make a send pay off, few do not
    sends = {d.unit_id: d.scores["send"] for d in decisions}
    assert sends["user20"] > sends["user2"] + 0.2  # visits 61 against 7
    logged = [json.loads(f[b"e"]) for _, f in redis_client.xrange(events.stream_key(BP.name))]
    for event, (unit, _) in zip(logged, requests, strict=True):  # logged: the features decided from
        assert event["features"].get("visits") == (None if unit == NO_VISITS else logged_visits(UNITS.index(unit)))


def test_spark_executors_write_the_same_batch_features(spark, lake, redis_client, redis_url, champion):
    model_uri, _ = champion
    write_bronze(lake)
    local = publish(lake, redis_client, redis_url, model_uri)
    on_driver = {u: entry(redis_client, local.version, u) for u in UNITS}
    redis_client.flushdb()
    on_spark = publish(dataclasses.replace(lake, local_read_max_bytes=0), redis_client, redis_url, model_uri)
    assert on_spark.version == local.version and on_spark.units == len(UNITS)
    assert {u: entry(redis_client, local.version, u) for u in UNITS} == on_driver
    assert on_driver["user5"]["f"] == {"visits": logged_visits(5)}
