"""Training and the promotion rule on synthetic data, with MLflow on a real SQLite store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import sklearn

from looper_common.decision_science.evaluation import (
    evaluate_policies,
    holdout_baseline,
    label_metrics,
    ope_promotion,
    promotion_decision,
)
from looper_common.training.examples import to_model_frame
from looper_common.training.registry import model_name
from looper_common.training.splits import time_split
from looper_common.training.train import MODEL_REQUIREMENTS, TrainingError, train_blueprint, tune_label
from tests.conftest import make_blueprint

pytestmark = pytest.mark.integration
RUN_DATE = date(2026, 2, 3)


def synthetic_wide(n: int, *, signal: bool, seed: int = 0) -> pd.DataFrame:
    """Logged decisions over three days; with ``signal`` clicks depend on opt-in x action."""
    rng = np.random.default_rng(seed)
    opted = rng.random(n) < 0.5
    recency = rng.exponential(5.0, n)
    action = np.where(rng.random(n) < 0.5, "send", "skip")
    p = np.full(n, 0.2)
    if signal:
        p = np.where((action == "send") & opted, 0.6, 0.05) + 0.1 * (recency < 2)
    clicked = (rng.random(n) < p).astype(float)
    day = np.sort(rng.integers(0, 3, n))
    ts = [datetime(2026, 2, 1, tzinfo=UTC) + timedelta(days=int(d), seconds=i) for i, d in enumerate(day)]
    return pd.DataFrame(
        {
            "decision_id": [f"d{i}" for i in range(n)],
            "unit_id": [f"u{i % 500}" for i in range(n)],
            "ts": ts,
            "action": action,
            "propensity": 0.5,
            "action_probs": [{"send": 0.5, "skip": 0.5}] * n,
            "matured_date": [date(2026, 2, 1) + timedelta(days=int(d)) for d in day],
            "recency": recency,
            "visits": rng.integers(0, 20, n).astype(float),
            "opted_in": opted,
            "country": rng.choice(["us", "gb", "de"], n),
            "clicked": clicked,
            "clicks": clicked,
            "revenue": 0.0,
            "best": 0.0,
            "last_rating": -1.0,
        }
    )


@pytest.fixture
def tracking(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_registry_uri(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = mlflow.create_experiment("looper/t_notify", artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment)
    yield experiment
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)  # else later tests' registry calls land in this one


def only_clicked():
    return make_blueprint(
        labels=[{"name": "clicked", "observation": "click", "window": "1h"}],
        model={"task": "binary", "families": ["hist_gbdt", "logistic"], "tuning": {"max_evals": 4}},
    )


def test_no_fit_and_no_selection_step_reads_the_holdout(tracking):
    # every holdout row carries a feature value that does not parse as a number: any fit,
    # trial or prediction over one of them raises, so training succeeds only without them
    blueprint = only_clicked()
    wide = synthetic_wide(3000, signal=True)
    split = time_split(wide, RUN_DATE)
    assert set(split.holdout["matured_date"]) == {RUN_DATE} and len(split.holdout) > 500
    poisoned = wide.astype({"recency": "object"})
    poisoned.loc[poisoned["matured_date"] == RUN_DATE, "recency"] = "holdout"
    with pytest.raises(ValueError):
        to_model_frame(poisoned, blueprint)
    with mlflow.start_run(run_name="train") as parent:
        [result] = train_blueprint(poisoned, blueprint, RUN_DATE, {"blueprint_version": blueprint.version})
    assert result.metrics["roc_auc"] > 0.7
    params = mlflow.get_run(parent.info.run_id).data.params
    assert int(params["holdout_rows"]) == len(split.holdout)
    assert int(params["train_rows"]) + int(params["valid_rows"]) == len(wide) - len(split.holdout)


def test_planted_signal_is_recovered_registered_and_promotable(tracking):
    blueprint = only_clicked()
    wide = synthetic_wide(3000, signal=True)
    with mlflow.start_run(run_name="train") as parent:
        [result] = train_blueprint(
            wide, blueprint, RUN_DATE, {"blueprint_version": blueprint.version, "run_date": str(RUN_DATE)}
        )
    assert result.metrics["roc_auc"] > 0.75
    assert result.metrics["log_loss"] < result.baseline["log_loss"]
    client = mlflow.MlflowClient()
    trials = client.search_runs([tracking], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(trials) == 4  # one nested run per hyperopt trial
    version = client.get_model_version(model_name("t_notify", "clicked"), result.version)
    assert version.tags["run_date"] == str(RUN_DATE) and version.tags["family"] in ("hist_gbdt", "logistic")
    # a rerun for the same date and blueprint version keeps what it made
    with mlflow.start_run(run_name="train again"):
        assert (
            train_blueprint(
                wide, blueprint, RUN_DATE, {"blueprint_version": blueprint.version, "run_date": str(RUN_DATE)}
            )
            == []
        )

    model_uri = f"models:/{result.model_name}/{result.version}"
    # the serving environment is pinned to what trained it, and nothing else (not inferred)
    requirements = Path(mlflow.artifacts.download_artifacts(f"{model_uri}/requirements.txt")).read_text()
    assert sorted(line.split("==")[0] for line in requirements.split()) == sorted(MODEL_REQUIREMENTS)
    assert f"scikit-learn=={sklearn.__version__}" in requirements.split()
    model = mlflow.sklearn.load_model(model_uri)
    holdout = time_split(wide, RUN_DATE).holdout
    label = blueprint.labels[0]
    metrics = label_metrics(model, holdout, blueprint, label)
    verdict = promotion_decision(blueprint, metrics, None, holdout_baseline(holdout, blueprint, label))
    assert verdict.promote, verdict.reason
    # off-policy: its policy beats the logged (uniformly random) one, and the OPE gate agrees
    result = evaluate_policies(holdout, blueprint, {"challenger": (model, None)},
                               reward_model=model, label="clicked")
    assert result.policies["logged"].estimates["ips"].value == pytest.approx(holdout["clicked"].mean())
    assert result.lifts["challenger"]["dr"].lower > 0
    gated = blueprint.model_copy(update={"promotion": blueprint.promotion.model_copy(update={"gate": "ope"})})
    assert ope_promotion(gated, result).promote
    strict = gated.model_copy(update={"promotion": gated.promotion.model_copy(update={"min_lift": 0.5})})
    assert not ope_promotion(strict, result).promote


def test_a_class_needs_two_training_rows_for_hist_gbdt(tracking):
    # hist_gbdt's early stopping holds out a stratified share of each class: with one
    # positive it raised from scikit-learn and failed the whole train_models job
    blueprint = make_blueprint(
        labels=[{"name": "clicked", "observation": "click", "window": "1h"}],
        model={"task": "binary", "families": ["hist_gbdt"], "tuning": {"max_evals": 1}},
    )
    split = time_split(synthetic_wide(600, signal=True), RUN_DATE)
    train, valid = split.train, split.valid
    train = train.assign(clicked=0.0)
    train.loc[train.index[5], "clicked"] = 1.0
    with pytest.raises(TrainingError, match="1 training row of its rarest class"):
        tune_label(train, valid, blueprint, blueprint.labels[0], seed=0)
    train.loc[train.index[6], "clicked"] = 1.0
    with mlflow.start_run(run_name="train"):
        model, params, _, _ = tune_label(train, valid, blueprint, blueprint.labels[0], seed=0)
    assert params["family"] == "hist_gbdt"
    assert model.predict_proba(to_model_frame(valid, blueprint)).shape == (len(valid), 2)


def test_pure_noise_is_not_promoted(tracking):
    blueprint = only_clicked()
    wide = synthetic_wide(3000, signal=False, seed=3)
    with mlflow.start_run(run_name="train"):
        [result] = train_blueprint(
            wide, blueprint, RUN_DATE, {"blueprint_version": blueprint.version, "run_date": str(RUN_DATE)}
        )
    model_uri = f"models:/{result.model_name}/{result.version}"
    # the serving environment is pinned to what trained it, and nothing else (not inferred)
    requirements = Path(mlflow.artifacts.download_artifacts(f"{model_uri}/requirements.txt")).read_text()
    assert sorted(line.split("==")[0] for line in requirements.split()) == sorted(MODEL_REQUIREMENTS)
    assert f"scikit-learn=={sklearn.__version__}" in requirements.split()
    model = mlflow.sklearn.load_model(model_uri)
    holdout = time_split(wide, RUN_DATE).holdout
    label = blueprint.labels[0]
    verdict = promotion_decision(
        blueprint,
        label_metrics(model, holdout, blueprint, label),
        None,
        holdout_baseline(holdout, blueprint, label),
    )
    assert not verdict.promote
    assert "baseline" in verdict.reason or "AUC" in verdict.reason


def test_challenger_worse_than_champion_is_not_promoted():
    blueprint = only_clicked()
    baseline = {"log_loss": 0.6}
    verdict = promotion_decision(
        blueprint, {"log_loss": 0.50, "roc_auc": 0.7}, {"log_loss": 0.40, "roc_auc": 0.8}, baseline
    )
    assert not verdict.promote and "worse than the champion" in verdict.reason
    verdict = promotion_decision(
        blueprint, {"log_loss": 0.401, "roc_auc": 0.8}, {"log_loss": 0.40, "roc_auc": 0.8}, baseline
    )
    assert verdict.promote and verdict.metrics["champion.log_loss"] == 0.40
