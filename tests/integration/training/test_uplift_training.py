"""Uplift end to end on the promo_offer simulator: learners, Qini selection, registry, policy, Redis.

The logged decisions are drawn straight from the scenario's oracle (seeded), which
keeps the data small and fast; training, the registry (MLflow on SQLite), the
publishing-path policy frame and the Redis write are the real ones. The oracle also
gives the truth the logged data never shows: every unit's effect, and the value of
any policy.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest

from looper_common.contracts import policy_store
from looper_common.contracts.blueprint import load_blueprint
from looper_common.decision_science.evaluation import evaluate_policies, qini_plot
from looper_common.decision_science.policies import policy_frame
from looper_common.publishing.redis_policy import publish_policy
from looper_common.sdk.client import LooperClient
from looper_common.simulate.scenarios import get_scenario
from looper_common.training.examples import to_model_frame
from looper_common.training.splits import time_split
from looper_common.training.train import train_blueprint
from looper_common.training.uplift import LEARNERS, UpliftLearner, treatment_propensity
from looper_common.training.uplift_metrics import pehe, qini_curve
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
BP = load_blueprint(ROOT / "blueprints" / "promo_offer.yaml")
SCENARIO = get_scenario(BP)
START = date(2026, 3, 1)
DAYS = 3
RUN_DATE = START + timedelta(days=DAYS)  # 24h windows: day d matures on d + 1
COST = float(BP.policy.params["cost"])


def population(n: int, seed: int) -> pd.DataFrame:
    """One day's features of ``n`` fresh users, with the oracle's reward of each action."""
    rng = np.random.default_rng(seed)
    features = SCENARIO.daily_features(SCENARIO.make_users(n, rng), rng)
    frame = pd.DataFrame(features)
    frame.insert(0, "unit_id", [f"e{i:05d}" for i in range(n)])
    for action in BP.decision.actions:
        frame[f"reward_{action}"] = [SCENARIO.expected_reward(x, action) for x in features]
    return frame


def logged_decisions(users: int, seed: int) -> pd.DataFrame:
    """``DAYS`` days of logged decisions as the wide training table, randomized as the SDK does.

    Epsilon 0.5 around the greedy action: day 0 serves the default (P(treat) = 0.25);
    later days a published rule that treats bargain hunters (P(treat) = 0.75 for them),
    so the logged propensities differ by unit and the learners must use them.
    """
    rng = np.random.default_rng(seed)
    people = SCENARIO.make_users(users, rng)
    days = []
    for day in range(DAYS):
        frame = pd.DataFrame(SCENARIO.daily_features(people, rng))
        rule = (frame["segment"] == "bargain").to_numpy() if day > 0 else np.zeros(users, dtype=bool)
        p_treat = np.where(rule, 0.75, 0.25)
        treated = rng.random(users) < p_treat
        action = np.where(treated, "treat", "control")
        reward = np.array([SCENARIO.expected_reward(x, a)
                           for x, a in zip(frame.to_dict("records"), action, strict=True)])
        start = datetime.combine(START + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
        frame = frame.assign(
            decision_id=[f"d{day}-{i:05d}" for i in range(users)],
            unit_id=[f"u{i:05d}" for i in range(users)],
            ts=[start + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86_400, users))],
            action=action,
            propensity=np.where(treated, p_treat, 1.0 - p_treat),
            action_probs=[{"treat": p, "control": 1.0 - p} for p in p_treat.tolist()],
            matured_date=START + timedelta(days=day + 1),
            purchased=(rng.random(users) < reward).astype(float),
        )
        days.append(frame)
    return pd.concat(days, ignore_index=True)


def true_value(treat: np.ndarray, evaluation: pd.DataFrame) -> float:
    """Expected purchases per user of a treat/control assignment, net of the offer's cost."""
    return float(np.where(treat, evaluation["reward_treat"] - COST, evaluation["reward_control"]).mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """Train promo_offer once on 3 x 6000 logged decisions; MLflow on a fresh SQLite store."""
    root = tmp_path_factory.mktemp("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    mlflow.set_registry_uri(f"sqlite:///{root}/mlflow.db")
    experiment = mlflow.create_experiment("looper/promo_offer", artifact_location=str(root / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment)
    wide = logged_decisions(6000, seed=11)
    tags = {"blueprint_version": BP.version, "run_date": str(RUN_DATE)}
    with mlflow.start_run(run_name="train") as parent:
        [result] = train_blueprint(wide, BP, RUN_DATE, tags)
    yield {"experiment": experiment, "parent": parent.info.run_id, "result": result, "wide": wide,
           "evaluation": population(5000, seed=99)}
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)  # else later tests' registry calls land in this one


def test_learners_are_nested_runs_and_the_best_qini_is_registered(trained) -> None:
    result = trained["result"]
    client = mlflow.MlflowClient()
    runs = client.search_runs([trained["experiment"]], f"tags.mlflow.parentRunId = '{trained['parent']}'")
    qini = {r.data.params["learner"]: r.data.metrics["qini_coefficient"] for r in runs}
    assert sorted(qini) == sorted(LEARNERS)
    assert all("auuc" in r.data.metrics and "log_loss" in r.data.metrics for r in runs)
    assert result.params["learner"] == max(qini, key=qini.get)
    assert result.family == f"uplift_{result.params['learner']}"
    assert result.metrics["qini_coefficient"] == pytest.approx(qini[result.params["learner"]])
    assert result.metrics["qini_coefficient"] > result.baseline["qini_coefficient"] == 0.0
    assert result.metrics["log_loss"] < result.baseline["log_loss"]
    artifacts = [a.path for a in client.list_artifacts(trained["parent"])]
    assert "qini_purchased.png" in artifacts
    version = client.get_model_version(result.model_name, result.version)
    assert version.tags["family"] == result.family and version.tags["run_date"] == str(RUN_DATE)


def test_chosen_learner_beats_a_constant_effect_and_its_policy_beats_treat_all_and_none(trained) -> None:
    result, evaluation = trained["result"], trained["evaluation"]
    model = mlflow.sklearn.load_model(f"models:/{result.model_name}/{result.version}")
    tau_true = (evaluation["reward_treat"] - evaluation["reward_control"]).to_numpy()
    tau_hat = model.predict_uplift(to_model_frame(evaluation.assign(action="control"), BP))
    train = time_split(trained["wide"], RUN_DATE).fit
    treated = (train["action"] == "treat").to_numpy()
    e = treatment_propensity(train["action"].to_numpy(), train["propensity"].to_numpy(), "treat")
    ate = qini_curve(np.zeros(len(train)), treated, train["purchased"].to_numpy(), e)[1][-1]  # IPW estimate
    assert pehe(tau_hat, tau_true) < 0.8 * pehe(np.full(len(tau_true), ate), tau_true)

    treat = (policy_frame(model, evaluation, BP)["action"] == "treat").to_numpy()
    personalized = true_value(treat, evaluation)
    treat_all = true_value(np.ones(len(evaluation), dtype=bool), evaluation)
    treat_none = true_value(np.zeros(len(evaluation), dtype=bool), evaluation)
    oracle = true_value(tau_true > COST, evaluation)
    assert personalized > max(treat_all, treat_none) + 0.01
    assert personalized <= oracle + 1e-12
    # mistakes are allowed, but most of those it treats must gain more than the cost
    assert np.mean(tau_true[treat] > COST) > 0.75


def test_registered_model_publishes_the_expected_actions(trained, redis_url, redis_client) -> None:
    result, evaluation = trained["result"], trained["evaluation"]
    model = mlflow.sklearn.load_model(f"models:/{result.model_name}/{result.version}")
    assert isinstance(model, UpliftLearner) and model.treatment == "treat" and model.control == "control"
    info = mlflow.models.get_model_info(f"models:/{result.model_name}/{result.version}")
    flavor = info.flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert f"looper_common.training.uplift.{type(model).__name__}" in flavor["skops_trusted_types"]
    units = evaluation.head(500)
    frame = policy_frame(model, units, BP)
    effect = model.predict_uplift(to_model_frame(units, BP, action="control"))
    expected = np.where(effect > COST, "treat", "control")
    np.testing.assert_array_equal(frame["action"].to_numpy(), expected)
    np.testing.assert_allclose(frame["score_treat"] - frame["score_control"], effect, atol=1e-9)
    assert 0.2 < (frame["action"] == "treat").mean() < 0.8
    np.testing.assert_array_equal(policy_frame(model, units, BP, {"cost": 1.0})["action"], "control")

    stats = publish_policy(redis_client, BP, frame, version="v-uplift", ttl_seconds=3600)
    assert stats.units == 500 and stats.switched
    for unit_id, action in zip(frame["unit_id"][:20], frame["action"][:20], strict=True):
        raw = redis_client.get(policy_store.entry_key(BP.name, "v-uplift", unit_id))
        assert policy_store.decode_entry(raw)[0] == action
    sdk = LooperClient(redis_url, blueprints={BP.name: BP}, pointer_ttl_s=0.0)
    requests = [(u, {k: units.iloc[i][k] for k in ("days_since_purchase", "visits_7d", "loyalty_member",
                                                    "segment")}) for i, u in enumerate(units["unit_id"][:50])]
    requests = [(u, {**x, "visits_7d": int(x["visits_7d"]), "loyalty_member": bool(x["loyalty_member"]),
                     "days_since_purchase": float(x["days_since_purchase"])}) for u, x in requests]
    for decision, greedy in zip(sdk.get_decisions(BP.name, requests), frame["action"][:50], strict=True):
        assert decision.policy_version == "v-uplift" and not decision.is_default
        assert decision.action_probs[greedy] == pytest.approx(0.75)  # epsilon 0.5 around the policy's choice


def test_without_a_randomized_treatment_arm_no_uplift_model_is_registered(trained) -> None:
    result = trained["result"]
    never_treated = trained["wide"].assign(action="control", propensity=1.0)  # exploration: none
    tags = {"blueprint_version": BP.version, "run_date": str(RUN_DATE)}
    with mlflow.start_run(run_name="train without treatment"):
        assert train_blueprint(never_treated, BP, RUN_DATE, tags, force=True) == []
    versions = mlflow.MlflowClient().search_model_versions(f"name = '{result.model_name}'")
    assert [str(v.version) for v in versions] == [result.version]


def test_evaluation_values_the_uplift_policy_net_of_cost_and_plots_its_qini_curve(trained) -> None:
    result = trained["result"]
    model = mlflow.sklearn.load_model(f"models:/{result.model_name}/{result.version}")
    holdout = time_split(trained["wide"], RUN_DATE).holdout
    ope_result = evaluate_policies(holdout, BP, {"challenger": (model, None)}, reward_model=model,
                                   label="purchased", n_bootstrap=100)
    treated = (holdout["action"] == "treat").to_numpy()
    net = holdout["purchased"].to_numpy() - COST * treated
    assert ope_result.policies["logged"].estimates["ips"].value == pytest.approx(net.mean())
    assert ope_result.lifts["challenger"]["dr"].value > 0  # personalizing beats the logged rule
    figure = qini_plot({"challenger": model}, holdout, BP, BP.labels[0])
    assert figure.axes[0].get_title() == "Qini curve: purchased (held-out)"
