"""evaluate-policy's `model` candidate is what evaluate_models judged: the same DR lift on the same day.

Real MLflow on SQLite and the small lake of test_model_loop (threshold policy, one label).
"""

from __future__ import annotations

import json

import mlflow
import pytest

from looper_common.decision_science import evaluate_models
from looper_common.decision_science.candidate import CandidateError, evaluate_candidate
from looper_common.decision_science.champion_tuning import champion_models
from looper_common.training import train_models
from tests.integration.test_model_loop import BP, DAYS, NAME, RUN_DATE, lake, settings  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


def test_model_candidate_matches_the_evaluation_and_params_change_it(lake, settings, tmp_path):  # noqa: F811
    with pytest.raises(CandidateError, match="needs a registered champion"):
        evaluate_candidate(lake, BP, "model", {}, since=RUN_DATE, until=RUN_DATE)
    train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS)
    evaluate_models(settings, lake, BP, RUN_DATE, n_bootstrap=50)
    tags = mlflow.MlflowClient().get_model_version(NAME, "1").tags
    models = champion_models(BP)

    same = evaluate_candidate(lake, BP, "model", models, since=RUN_DATE, until=RUN_DATE, n_bootstrap=50)
    lift = same.result.lifts["candidate"]["dr"]
    assert same.decisions == 300 and set(same.result.policies["candidate"].estimates) == {"ips", "snips", "dm", "dr"}
    assert f"{lift.value:+.4f}" == tags["ope_lift_dr"]
    assert f"{lift.lower:+.4f}..{lift.upper:+.4f}" == tags["ope_lift_dr_interval"]
    assert "Off-policy value" in same.html

    params = tmp_path / "never.json"
    params.write_text(json.dumps({"threshold": 2.0}))  # no score reaches it: the candidate always skips
    never = evaluate_candidate(lake, BP, str(params), models, since=RUN_DATE, until=RUN_DATE, n_bootstrap=50)
    skip = (never.result.policies["candidate"].estimates["ips"].value)
    assert skip != pytest.approx(same.result.policies["candidate"].estimates["ips"].value)
    assert never.policy == "never.json"
