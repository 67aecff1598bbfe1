"""evaluate_models with a staged challenger: shadow logs and canary outcomes next to OPE, and require_canary.

The small lake of test_model_loop (delta-rs, MLflow on SQLite): the run date's bronze
decisions carry challenger fields, as the SDK logs them for model version 1.
"""

from __future__ import annotations

from datetime import timedelta

import mlflow
import numpy as np
import pyarrow as pa
import pytest

from looper_common.decision_science import evaluate_models
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, SILVER_EXAMPLES
from looper_common.training import train_models
from tests.conftest import make_blueprint
from tests.integration.test_model_loop import BP, DAYS, RUN_DATE, decisions, settings  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
CANARY_VERSION = f"{RUN_DATE:%Y%m%d}-m1-abcdef"  # publish.policy_version of model version 1


def staged(min_decisions: int):
    promotion = {"stage": "canary", "canary": {"share": 0.2}, "require_canary": {"min_decisions": min_decisions}}
    return make_blueprint(**{k: BP.model_dump(mode="json")[k] for k in ("labels", "model", "policy")},
                          promotion=promotion)


@pytest.fixture
def lake(tmp_path) -> Lake:
    """test_model_loop's lake; on the run date a fifth of the decisions are the canary's, the rest shadowed."""
    lake = Lake(str(tmp_path / "lake"))
    lake.ensure_tables()
    rng = np.random.default_rng(3)
    for back in range(DAYS, -1, -1):
        day = RUN_DATE - timedelta(days=back)
        rows = decisions(day, rng)
        for i, row in enumerate(rows):
            if back:
                continue
            if i % 5 == 0:  # the canary serves its greedy action (threshold policy) with propensity 0.95
                row.update(variant="canary", policy_version=CANARY_VERSION, propensity=0.95)
            else:
                row.update(shadow_version=CANARY_VERSION, shadow_scores={"send": 0.5, "skip": 0.1},
                           shadow_action="send" if float(row["features"]["recency"]) < 4 else "skip")
        examples = [{**r, "label": "clicked", "value": r["clicked"], "n_observations": int(r["clicked"]),
                     "first_feedback_s": None} for r in rows]
        where = {"blueprint": BP.name, "date": day}
        lake.replace_partition(SILVER_EXAMPLES, pa.Table.from_pylist(examples, schema=SILVER_EXAMPLES.schema), where)
        lake.replace_partition(BRONZE_DECISIONS, pa.Table.from_pylist(rows, schema=BRONZE_DECISIONS.schema), where)
    return lake


def _report(label) -> tuple[str, dict[str, float]]:
    client = mlflow.MlflowClient()
    run = client.get_run(client.get_model_version(label.model, label.challenger).tags["evaluation_run_id"])
    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="report_clicked.html")
    return open(path).read(), run.data.metrics


def test_canary_evidence_is_reported_and_required(lake, settings):  # noqa: F811
    train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS)
    [blocked] = evaluate_models(settings, lake, staged(10_000), RUN_DATE, n_bootstrap=50, lookback_days=DAYS).labels
    assert blocked.outcome == "kept"
    assert "canary served 60 held-out decisions" in blocked.reason
    assert "fewer than require_canary.min_decisions 10000" in blocked.reason
    html, metrics = _report(blocked)
    assert "Canary: on-policy clicked" in html and "Shadow: the challenger" in html
    assert metrics["canary.decisions"] == 60 and metrics["canary.champion_decisions"] == 240
    assert metrics["canary.lift_lower"] <= metrics["canary.lift"] <= metrics["canary.lift_upper"]
    # shadow: the logged action's value over the 240 shadowed decisions, with their propensities
    assert metrics["shadow.shadow.ips_lower"] < metrics["shadow.shadow.ips"] < metrics["shadow.shadow.ips_upper"]
    assert "shadow.challenger.dr" in metrics

    [promoted] = evaluate_models(settings, lake, staged(50), RUN_DATE, n_bootstrap=50, lookback_days=DAYS).labels
    assert promoted.outcome == "promoted"
    assert "canary served 60 held-out decisions, on-policy lift over the champion" in promoted.reason


def test_without_require_canary_a_missing_canary_does_not_block(lake, settings):  # noqa: F811
    train_models(settings, lake, BP, RUN_DATE, lookback_days=DAYS)
    shadow_only = make_blueprint(**{k: BP.model_dump(mode="json")[k] for k in ("labels", "model", "policy")},
                                 promotion={"stage": "shadow"})
    [label] = evaluate_models(settings, lake, shadow_only, RUN_DATE, n_bootstrap=50, lookback_days=DAYS).labels
    assert label.outcome == "promoted"
