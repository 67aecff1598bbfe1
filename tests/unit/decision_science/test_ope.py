"""Off-policy estimators on hand-computed cases, grouped evaluation, and interval coverage on the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from looper_common.contracts.blueprint import load_blueprint
from looper_common.decision_science import ope
from looper_common.simulate.scenarios import get_scenario
from tests.conftest import ROOT

# Four logged decisions over two actions. Weights pi(a)/p: 2, 0, 2, 4/3.
HAND = {
    "decision_id": ["a", "b", "c", "d"],
    "action_index": [0, 1, 0, 1],
    "propensity": [0.5, 0.5, 0.25, 0.75],
    "reward": [1.0, 0.0, 0.0, 1.0],
    "q_hat": [[0.6, 0.2], [0.5, 0.1], [0.4, 0.3], [0.2, 0.9]],
    "pi_new": [[1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]],
    "pi_old": [[0.5, 0.5], [0.5, 0.5], [0.25, 0.75], [0.25, 0.75]],  # = the logged propensities
}


def test_estimators_match_hand_computed_values():
    result = ope.evaluate(HAND, ["new", "old"], baseline="old", n_bootstrap=50)
    new = result.policies["new"]
    # IPS (2*1 + 0 + 2*0 + 4/3*1) / 4; SNIPS the same sum over the weights 2+0+2+4/3
    assert new.estimates["ips"].value == pytest.approx((10 / 3) / 4, rel=1e-12)
    assert new.estimates["snips"].value == pytest.approx((10 / 3) / (16 / 3), rel=1e-12)
    # DM: 0.6, 0.5, 0.5*0.4 + 0.5*0.3, 0.9
    assert new.estimates["dm"].value == pytest.approx((0.6 + 0.5 + 0.35 + 0.9) / 4, rel=1e-12)
    # DR: DM + w (r - q(a)): 0.6 + 2*0.4, 0.5 + 0, 0.35 + 2*(-0.4), 0.9 + 4/3*0.1
    assert new.estimates["dr"].value == pytest.approx((1.4 + 0.5 - 0.45 + 0.9 + 0.4 / 3) / 4, rel=1e-12)
    assert new.ess == pytest.approx((16 / 3) ** 2 / (4 + 0 + 4 + 16 / 9), rel=1e-12)
    assert new.max_weight == pytest.approx(2.0) and new.clipped == 0
    old = result.policies["old"]  # the logging policy itself: every weight is 1, IPS is the mean reward
    assert old.estimates["ips"].value == pytest.approx(0.5) and old.ess == pytest.approx(4.0)
    lift = result.lifts["new"]["ips"]
    assert lift.value == pytest.approx((10 / 3) / 4 - 0.5, rel=1e-12)
    for est in new.estimates.values():
        assert est.lower <= est.upper


def test_clipping_caps_the_weights():
    result = ope.evaluate(HAND, ["new"], clip=1.5, n_bootstrap=10)
    new = result.policies["new"]
    assert new.estimates["ips"].value == pytest.approx((1.5 + 4 / 3) / 4, rel=1e-12)
    assert new.clipped == 2 and new.max_weight == pytest.approx(2.0)  # diagnostics see the raw weights


def test_bad_logs_are_refused_with_the_column_named():
    bad = {**HAND, "propensity": [0.5, 0.0, 0.25, 0.75]}
    with pytest.raises(ope.OPEError, match="^1 logged decision.*propensity outside"):
        ope.evaluate(bad, ["new"])
    no_reward = {**HAND, "reward": [1.0, None, np.nan, 1.0]}
    with pytest.raises(ope.OPEError, match="^2 logged decision.*null 'reward'"):
        ope.evaluate(no_reward, ["new"])
    with pytest.raises(ope.OPEError, match="^4 logged decision.*not of 2 actions"):
        ope.evaluate({**HAND, "q_hat": [[0.1, 0.2, 0.3]] * 4}, ["new"])
    with pytest.raises(ope.OPEError, match="pi_other"):
        ope.evaluate(HAND, ["other"])


def test_no_decisions_is_an_error_for_evaluate_and_nothing_for_evaluate_by():
    empty = {name: v[:0] for name, v in HAND.items()}
    with pytest.raises(ope.OPEError, match="no logged decisions"):
        ope.evaluate(empty, ["new"])
    assert ope.evaluate_by(empty, "action_index", ["new"]) == {}


class SimulatedLogs:
    """Notification traffic from the simulator's hidden response model, logged epsilon-greedily.

    Behaviour: send to opted-in users, epsilon 0.3. Target: send to opted-in users who
    lapsed 1 to 10 days ago, epsilon 0.1. The reward model is deliberately biased
    (DR must not care). The true value of the target comes from the oracle.
    """

    def __init__(self) -> None:
        blueprint = load_blueprint(ROOT / "blueprints" / "notification_send.yaml")
        self.scenario = get_scenario(blueprint)

    def contexts(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        users = self.scenario.make_users(n, rng)
        features = self.scenario.daily_features(users, rng)
        truth = np.array([[self.scenario.event_probabilities(f, a)["click"] for a in ("send", "skip")]
                          for f in features])
        lapsed = np.array([f["push_opt_in"] and 1.0 <= f["days_since_last_visit"] <= 10.0 for f in features])
        opted = np.array([bool(f["push_opt_in"]) for f in features])
        behaviour = self.epsilon_greedy(np.where(opted, 0, 1), 0.3)
        target = self.epsilon_greedy(np.where(lapsed, 0, 1), 0.1)
        return truth, behaviour, target

    @staticmethod
    def epsilon_greedy(greedy: np.ndarray, eps: float) -> np.ndarray:
        probs = np.full((len(greedy), 2), eps / 2)
        probs[np.arange(len(greedy)), greedy] += 1 - eps
        return probs

    def true_value(self, n: int = 100_000) -> float:
        truth, _, target = self.contexts(n, np.random.default_rng(12345))
        return float((truth * target).sum(axis=1).mean())

    def logs(self, n: int, seed: int) -> dict[str, object]:
        rng = np.random.default_rng(seed)
        truth, behaviour, target = self.contexts(n, rng)
        action = (rng.random(n) >= behaviour[:, 0]).astype(int)
        rows = np.arange(n)
        reward = (rng.random(n) < truth[rows, action]).astype(float)
        return {
            "decision_id": [f"s{seed}-{i}" for i in range(n)],
            "action_index": action,
            "propensity": behaviour[rows, action],
            "reward": reward,
            "q_hat": np.clip(0.7 * truth + 0.03, 0, 1),
            "pi_target": target,
        }


def comparable(result: ope.OPEResult) -> dict[object, object]:
    """Every number of a result (estimates, intervals, lifts, diagnostics) under a flat key."""
    out: dict[object, object] = {"n": result.n}
    for row in result.table():
        key = row["policy"], row["estimator"]
        out.update({(*key, k): v for k, v in row.items() if isinstance(v, float | int)})
    out.update({(name, "clipped"): est.clipped for name, est in result.policies.items()})
    return out


def test_grouped_evaluation_is_each_group_evaluated_alone():
    columns = SimulatedLogs().logs(6000, seed=3)
    columns["pi_uniform"] = np.full((6000, 2), 0.5)
    columns["segment"] = np.arange(6000) % 3
    options = {"baseline": "uniform", "clip": 5.0, "n_bootstrap": 200, "seed": 11}
    whole = ope.evaluate(columns, ["target", "uniform"], **options)
    assert whole.n == 6000 and whole.policies["target"].clipped > 0 and whole.lifts["target"]
    # a decision's bucket is its id's alone: the same decisions give the same buckets, grouped or not
    by_segment = ope.evaluate_by(columns, "segment", ["target", "uniform"], **options)
    assert set(by_segment) == {0, 1, 2}
    for segment, result in by_segment.items():
        rows = columns["segment"] == segment
        alone = ope.evaluate({name: np.asarray(v)[rows] for name, v in columns.items()}, ["target", "uniform"],
                             **options)
        assert result.n == 2000
        assert comparable(result) == pytest.approx(comparable(alone), rel=1e-12, abs=1e-15)
    hashes = ope.decision_hashes(columns["decision_id"])
    assert comparable(ope.evaluate(columns, ["target", "uniform"], id_hashes=hashes, **options)) == comparable(whole)
    with pytest.raises(ope.OPEError, match="5999 id_hashes for 6000"):
        ope.evaluate(columns, ["target"], id_hashes=hashes[1:])


def test_the_seed_draws_another_split_and_other_resamples():
    columns = SimulatedLogs().logs(3000, seed=5)
    first, again = (ope.evaluate(columns, ["target"], seed=1).policies["target"].estimates["dr"] for _ in range(2))
    other = ope.evaluate(columns, ["target"], seed=2).policies["target"].estimates["dr"]
    assert first == again
    assert other.value == pytest.approx(first.value, rel=1e-12)  # the point estimate does not depend on it
    assert (other.lower, other.upper) != (first.lower, first.upper)


def test_a_non_mapping_or_non_string_ids_are_refused():
    with pytest.raises(ope.OPEError, match="mapping of column name"):
        ope.evaluate([HAND], ["new"])
    with pytest.raises(ope.OPEError, match="decision_id must be strings"):
        ope.evaluate({**HAND, "decision_id": [1, 2, 3, 4]}, ["new"])


def coverage(sim: SimulatedLogs, repetitions: int, first_seed: int = 0) -> tuple[dict[str, int], object]:
    """How many of ``repetitions`` seeded logs give IPS and DR intervals covering the truth."""
    truth = sim.true_value()
    logs = [sim.logs(3000, seed) for seed in range(first_seed, first_seed + repetitions)]
    columns = {name: np.concatenate([np.asarray(log[name]) for log in logs]) for name in logs[0]}
    columns["rep"] = np.repeat(np.arange(repetitions), 3000)
    results = ope.evaluate_by(columns, "rep", ["target"])
    assert len(results) == repetitions
    covered = {e: sum(r.policies["target"].estimates[e].covers(truth) for r in results.values())
               for e in ("ips", "dr")}
    return covered, (truth, results[0].policies["target"].estimates["dr"])


def test_intervals_cover_the_true_value_on_the_simulator():
    repetitions = 50
    covered, (truth, dr) = coverage(SimulatedLogs(), repetitions)
    assert covered["dr"] >= 0.9 * repetitions, covered
    assert covered["ips"] >= 0.9 * repetitions, covered
    assert dr.upper - dr.lower < truth  # and informative: narrower than the value itself
