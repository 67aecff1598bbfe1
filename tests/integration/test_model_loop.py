"""train_models -> evaluate_models -> tune_policy -> publish_policies, called as functions on a small lake.

Real everything, no Spark: examples and decisions in Delta (delta-rs), MLflow on
SQLite, a real redis-server. Each stage's result object says what it did, and a rerun
for the same date changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import mlflow
import numpy as np
import pyarrow as pa
import pytest

from looper_common.contracts import policy_store
from looper_common.contracts.config import MlflowSettings, RedisSettings, Settings, TrainingSettings
from looper_common.decision_science import evaluate_models, tune_policy
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, SILVER_EXAMPLES
from looper_common.publishing import publish_policies
from looper_common.training import train_models
from looper_common.training.registry import CHAMPION, model_name
from tests.conftest import make_blueprint

pytestmark = pytest.mark.integration
RUN_DATE = date(2026, 4, 10)
DAYS = 3
PER_DAY = 300
BP = make_blueprint(
    labels=[{"name": "clicked", "observation": "click", "window": "1h", "aggregation": "any"}],
    model={"task": "binary", "families": ["logistic"], "tuning": {"max_evals": 3}},
    policy={"type": "threshold", "params": {"threshold": 0.5},
            "exploration": {"type": "epsilon_greedy", "epsilon": 0.1}, "tuning": {"max_evals": 4}},
)
NAME = model_name(BP.name, "clicked")


def decisions(day: date, rng: np.random.Generator) -> list[dict]:
    """A day of logged decisions (uniform over send/skip) whose clicks come from sends to recent visitors."""
    rows = []
    for i in range(PER_DAY):
        recency, action = float(rng.uniform(0, 10)), "send" if rng.random() < 0.5 else "skip"
        clicked = rng.random() < (0.8 if action == "send" and recency < 4 else 0.1)
        rows.append({
            "decision_id": f"{day:%m%d}-{i:04d}", "event_id": f"e{day:%m%d}-{i:04d}", "blueprint": BP.name,
            "blueprint_version": BP.version, "unit_id": f"u{i}",
            "ts": datetime(day.year, day.month, day.day, 8, tzinfo=UTC) + timedelta(seconds=30 * i),
            "features": {"recency": str(recency), "visits": str(i % 7), "opted_in": str(i % 2 == 0).lower(),
                         "country": ["de", "fr", "us"][i % 3]},
            "action": action, "propensity": 0.5, "action_probs": {"send": 0.5, "skip": 0.5}, "scores": None,
            "policy_version": None, "is_default": False, "date": day, "clicked": float(clicked),
        })
    return rows


@pytest.fixture
def lake(tmp_path) -> Lake:
    """Examples that matured on the run date and the days before it, and their decisions in bronze."""
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    rng = np.random.default_rng(3)
    for back in range(DAYS, -1, -1):
        day = RUN_DATE - timedelta(days=back)
        rows = decisions(day, rng)
        examples = [{**r, "label": "clicked", "value": r["clicked"], "n_observations": int(r["clicked"]),
                     "first_feedback_s": None} for r in rows]
        where = {"blueprint": BP.name, "date": day}
        lake.replace_partition(SILVER_EXAMPLES, pa.Table.from_pylist(examples, schema=SILVER_EXAMPLES.schema), where)
        lake.replace_partition(BRONZE_DECISIONS, pa.Table.from_pylist(rows, schema=BRONZE_DECISIONS.schema), where)
    return lake


@pytest.fixture
def settings(tmp_path, redis_url) -> Settings:
    return Settings(
        home=str(tmp_path), lake_root=str(tmp_path / "lake"), redis=RedisSettings(url=redis_url),
        mlflow=MlflowSettings(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                              artifact_root=str(tmp_path / "artifacts")),
    )


def test_each_stage_returns_what_it_did_and_a_rerun_changes_nothing(lake, settings, redis_client):
    trained = train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS)
    assert trained.examples == (DAYS + 1) * PER_DAY and trained.challengers == ((NAME, "1"),)
    assert f"{NAME} v1" in trained.summary()
    assert train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS).challengers == ()

    evaluated = evaluate_models(settings, lake, BP, RUN_DATE, n_bootstrap=20, lookback_days=DAYS)
    assert evaluated.holdout_rows == PER_DAY
    [label] = evaluated.labels
    assert (label.model, label.challenger, label.champion, label.outcome) == (NAME, "1", None, "promoted")
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, CHAMPION).version) == "1"
    runs = mlflow.search_runs(experiment_names=[f"looper/{BP.name}"], output_format="list")
    evaluation = next(r for r in runs if r.info.run_name == f"evaluate clicked {RUN_DATE}")
    assert {"report_clicked.html", "evaluation_clicked.png"} <= {
        a.path for a in client.list_artifacts(evaluation.info.run_id)}
    [again] = evaluate_models(settings, lake, BP, RUN_DATE, n_bootstrap=20, lookback_days=DAYS).labels
    assert (again.outcome, again.reason) == ("skipped", "no new challenger")

    tuned = tune_policy(settings, lake, BP, RUN_DATE, max_evals=4, n_bootstrap=20)
    assert tuned.outcome in {"tuned", "kept"} and tuned.decisions == PER_DAY and "threshold" in tuned.params
    champion = client.get_model_version_by_alias(NAME, CHAMPION)
    assert json.loads(champion.tags["policy_params"]) == tuned.params
    assert champion.tags["policy_tuned_date"] == str(RUN_DATE)
    assert tune_policy(settings, lake, BP, RUN_DATE).reason == f"already tuned for {RUN_DATE}"

    published = publish_policies(settings, lake, BP, RUN_DATE)
    assert published.stats.units == PER_DAY and published.stats.switched
    assert published.active == published.stats.version == redis_client.get(policy_store.active_key(BP.name)).decode()
    rerun = publish_policies(settings, lake, BP, RUN_DATE)
    assert not rerun.stats.switched and rerun.active == published.active


def test_without_examples_or_a_champion_nothing_is_made(tmp_path, settings, redis_client):
    empty = Lake(str(tmp_path / "empty"))
    empty.ensure_tables()
    trained = train_models(settings, empty, BP, RUN_DATE)
    assert trained.examples == 0 and trained.challengers == () and "nothing trained" in trained.summary()
    tuned = tune_policy(settings, empty, BP, RUN_DATE)
    assert (tuned.outcome, tuned.reason) == ("skipped", f"no champion of {NAME}")
    published = publish_policies(settings, empty, BP, RUN_DATE)
    assert published.stats is None and published.active is None and "nothing published" in published.summary()
    assert redis_client.keys("looper:policy:*") == []


def test_over_training_max_examples_training_reads_a_sample_and_its_run_says_so(lake, settings):
    total = (DAYS + 1) * PER_DAY
    bounded = settings.model_copy(update={"training": TrainingSettings(max_examples=total // 2)})

    trained = train_models(bounded, lake, BP, RUN_DATE, lookback_days=DAYS)

    assert 0.3 * total < trained.examples < 0.7 * total and trained.challengers == ((NAME, "1"),)
    runs = mlflow.search_runs(experiment_names=[f"looper/{BP.name}"], output_format="list")
    parent = next(r for r in runs if r.info.run_name == f"train {RUN_DATE}")
    tags = parent.data.tags
    assert (tags["training.sampled"], tags["training.sample_of_rows"], tags["training.max_examples"]) == (
        "true", str(total), str(total // 2))


def test_under_training_max_examples_the_run_says_it_read_everything(lake, settings):
    trained = train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS)

    assert trained.examples == (DAYS + 1) * PER_DAY
    runs = mlflow.search_runs(experiment_names=[f"looper/{BP.name}"], output_format="list")
    parent = next(r for r in runs if r.info.run_name == f"train {RUN_DATE}")
    assert parent.data.tags["training.sampled"] == "false" and "training.sample_of_rows" not in parent.data.tags
