"""After evaluate_models and tune_policy, the model version links to its reports and says its verdict.

Real MLflow on SQLite in a temporary folder; the small lake of test_model_loop.
"""

from __future__ import annotations

import json

import mlflow
import pytest

from looper_common.decision_science import evaluate_models, tune_policy
from looper_common.decision_science.version_review import describe
from looper_common.training import train_models
from tests.integration.test_model_loop import BP, DAYS, NAME, RUN_DATE, lake, settings  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


def test_version_carries_its_evaluation_tuning_and_readable_params(lake, settings):  # noqa: F811
    train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS)
    [label] = evaluate_models(settings, lake, BP, RUN_DATE, n_bootstrap=20).labels
    client = mlflow.MlflowClient()
    version = client.get_model_version(NAME, "1")
    tags = version.tags
    run = client.get_run(tags["evaluation_run_id"])
    assert run.info.run_name == f"evaluate clicked {RUN_DATE}"
    assert tags["evaluation_report"] == f"runs:/{run.info.run_id}/report_clicked.html"
    assert tags["evaluation_report_url"] == (
        f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/artifactPath/report_clicked.html")
    assert "report_clicked.html" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert tags["promotion_verdict"] == label.outcome == "promoted"
    assert tags["promotion_reason"] == label.reason == run.data.tags["reason"]
    lift = run.data.metrics["ope.challenger.lift_dr"]
    assert tags["ope_lift_dr"] == f"{lift:+.4f}"
    assert tags["ope_lift_dr_interval"] == (f"{run.data.metrics['ope.challenger.lift_dr_lower']:+.4f}.."
                                            f"{run.data.metrics['ope.challenger.lift_dr_upper']:+.4f}")
    assert version.description.startswith(f"**Promotion verdict ({RUN_DATE}): promoted**")
    assert f"[report_clicked.html]({tags['evaluation_report_url']})" in version.description

    tuned = tune_policy(settings, lake, BP, RUN_DATE, max_evals=4, n_bootstrap=20)
    version = client.get_model_version(NAME, "1")
    assert json.loads(version.tags["policy_params"]) == tuned.params
    tuning = client.get_run(version.tags["policy_tuning_run_id"])
    assert version.tags["policy_tuning_report_url"] == (
        f"#/experiments/{tuning.info.experiment_id}/runs/{tuning.info.run_id}/artifactPath/report_policy.html")
    assert version.description == describe(dict(version.tags))
    assert version.description.startswith("**Promotion verdict")  # the evaluation part stays
    for param, value in tuned.params.items():
        assert f"| {param} | {json.dumps(value)} |" in version.description
    assert "[report_policy.html](#/experiments/" in version.description


def test_without_ope_the_lift_says_so():
    from looper_common.decision_science.evaluation import PromotionVerdict
    from looper_common.decision_science.version_review import evaluation_tags

    verdict = PromotionVerdict(False, "loss not better", {})
    tags = evaluation_tags("7", "r1", "report_x.html", verdict, "kept", "2026-01-01")
    assert tags["ope_lift_dr"] == tags["ope_lift_dr_interval"] == "not estimated"
    assert describe(tags).startswith("**Promotion verdict (2026-01-01): kept**. loss not better")
