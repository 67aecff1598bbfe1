"""Bayesian tuning of a policy's parameters for the product goal, estimated off-policy.

The champion models stay fixed; what is tuned is how their scores become decisions:
the ``threshold``, per-action ``offsets``, the ``weights`` of a ``weighted_sum`` policy
and the exploration rate (``epsilon``, or a softmax ``temperature``) within the
blueprint's ``policy.tuning.explore`` range. Each hyperopt (TPE) trial builds the
distribution the SDK would serve with those parameters on the newest logged
decisions, estimates the objective with the doubly robust estimator
(``looper_common.decision_science.ope``) and checks the guardrails:

* a guardrail on a label (``unsubscribed`` max 0.01) is estimated off-policy, like the
  objective;
* a guardrail ``<action>s_per_unit`` or ``<action>_rate`` (``sends_per_unit``) is the
  expected number of times the policy takes that action per unit (per decision), known
  exactly from the served distribution.

A trial that breaks a guardrail is infeasible; the best feasible trial wins, and is
kept only when its estimate is not below the untuned parameters' (otherwise the
blueprint's parameters stay). Estimates of the winner are point estimates maximized
over trials (optimistic): the report shows its interval and lift over the untuned.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe  # noqa: E402

from looper_common.contracts.blueprint import Blueprint, Guardrail  # noqa: E402
from looper_common.decision_science import ope  # noqa: E402
from looper_common.decision_science.evaluation import logged_probabilities, reward_of  # noqa: E402
from looper_common.decision_science.policies import (  # noqa: E402
    combine_scores,
    policy_labels,
    score_actions,
    target_probabilities,
)

log = logging.getLogger(__name__)
INFEASIBLE = 1e6  # added to a trial's loss per unit of guardrail violation (and once)


@dataclass
class Trial:
    number: int
    params: dict[str, object]
    objective: float
    guardrails: dict[str, float]
    feasible: bool


@dataclass
class TuningResult:
    params: dict[str, object]  # what to publish (tuned, or the blueprint's when tuning did not help)
    tuned: bool
    trials: list[Trial]
    untuned: Trial
    evaluation: ope.OPEResult  # chosen vs untuned vs logged, with intervals
    main_guardrail: str | None
    notes: list[str] = field(default_factory=list)

    def trials_frame(self) -> pd.DataFrame:
        return pd.DataFrame([
            {"trial": t.number, **{f"param.{k}": v for k, v in flat_params(t.params).items()},
             "objective": t.objective, **{f"guardrail.{k}": v for k, v in t.guardrails.items()},
             "feasible": t.feasible}
            for t in self.trials
        ])


def flat_params(params: Mapping[str, object]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": float(v) for k, v in value.items()})
        else:
            out[key] = float(value)
    return out


def _action_metric(metric: str, actions: list[str]) -> int | None:
    match = re.fullmatch(r"(?P<action>[a-z0-9_]+?)(?:s_per_unit|_per_unit|_rate)", metric)
    if match and match["action"] in actions:
        return actions.index(match["action"])
    return None


class PolicyTuner:
    """The logged decisions and the fixed models' scores, ready to evaluate any parameters."""

    def __init__(self, holdout: pd.DataFrame, blueprint: Blueprint, models: Mapping[str, object],
                 *, seed: int = 0) -> None:
        self.blueprint, self.seed = blueprint, seed
        self.actions = list(blueprint.decision.actions)
        labels = set(policy_labels(blueprint, blueprint.policy.params))
        labels |= {g.metric for g in blueprint.objectives.guardrails if g.metric in models}
        missing = [label for label in policy_labels(blueprint, blueprint.policy.params) if label not in models]
        if missing:
            raise ValueError(f"{blueprint.name}: tuning needs the champion model of {missing}")
        self.scores = {label: score_actions(models[label], holdout, blueprint, label) for label in labels}
        index = holdout["action"].map({a: i for i, a in enumerate(self.actions)})
        self.base = {
            "decision_id": holdout["decision_id"].astype(str).to_numpy(),
            "action_index": index.to_numpy(dtype="int32"),
            "propensity": holdout["propensity"].to_numpy(dtype="float64"),
        }
        self.id_hashes = ope.decision_hashes(self.base["decision_id"])  # once, not once per trial
        self.rewards = {label: reward_of(holdout, blueprint, label) for label in self.scores if label in holdout}
        self.logged = logged_probabilities(holdout, blueprint)
        self.units = max(int(holdout["unit_id"].nunique()), 1)
        self.decisions = len(holdout)
        for guardrail in blueprint.objectives.guardrails:
            if _action_metric(guardrail.metric, self.actions) is None and guardrail.metric not in self.rewards:
                raise ValueError(
                    f"{blueprint.name}: guardrail {guardrail.metric!r} is neither a label with a model nor "
                    f"'<action>s_per_unit' / '<action>_rate' for an action in {self.actions}"
                )

    def probabilities(self, params: Mapping[str, object]) -> np.ndarray:
        return target_probabilities(combine_scores(self.scores, self.blueprint, params), self.blueprint, params)

    def estimate(self, policies: Mapping[str, np.ndarray], label: str, **options) -> ope.OPEResult:
        """``ope.evaluate`` of ``policies`` (name -> probabilities) with ``label`` as the reward."""
        columns = {**self.base, "reward": self.rewards[label], "q_hat": self.scores[label],
                   **{ope.policy_column(name): probs for name, probs in policies.items()}}
        return ope.evaluate(columns, list(policies), seed=self.seed, id_hashes=self.id_hashes, **options)

    def guardrail_value(self, guardrail: Guardrail, probs: np.ndarray, result: ope.OPEResult | None) -> float:
        action = _action_metric(guardrail.metric, self.actions)
        if action is not None:
            per = self.units if guardrail.metric.endswith("per_unit") else self.decisions
            return float(probs[:, action].sum() / per)
        assert result is not None
        return result.policies["trial"].estimates["dr"].value

    def evaluate(self, number: int, params: dict[str, object]) -> Trial:
        probs = self.probabilities(params)
        objective = self.blueprint.objectives.maximize
        result = self.estimate({"trial": probs}, objective, n_bootstrap=0, clip=self.blueprint.promotion.clip)
        values: dict[str, float] = {}
        feasible = True
        for guardrail in self.blueprint.objectives.guardrails:
            on_label = _action_metric(guardrail.metric, self.actions) is None
            extra = self.estimate({"trial": probs}, guardrail.metric, n_bootstrap=0) if on_label else None
            value = self.guardrail_value(guardrail, probs, extra)
            values[guardrail.metric] = value
            feasible &= (guardrail.max is None or value <= guardrail.max) and (
                guardrail.min is None or value >= guardrail.min)
        return Trial(number, params, result.policies["trial"].estimates["dr"].value, values, feasible)

    def violation(self, trial: Trial) -> float:
        total = 0.0
        for guardrail in self.blueprint.objectives.guardrails:
            value = trial.guardrails[guardrail.metric]
            if guardrail.max is not None:
                total += max(0.0, value - guardrail.max)
            if guardrail.min is not None:
                total += max(0.0, guardrail.min - value)
        return total


def search_space(blueprint: Blueprint, scores: Mapping[str, np.ndarray]) -> dict[str, object]:
    """The hyperopt space of the policy's tunable params, from the blueprint and the score spread."""
    kind = blueprint.policy.type
    tuning = blueprint.policy.tuning
    objective = scores[blueprint.objectives.maximize]
    actions = blueprint.decision.actions
    space: dict[str, object] = {}
    if kind == "threshold":
        lo, hi = np.quantile(objective[:, 0], [0.01, 0.99])
        space["threshold"] = hp.uniform("threshold", float(lo), float(max(hi, lo + 1e-6)))
    if kind in ("argmax", "weighted_sum"):
        spread = float(np.std(objective)) or 1.0
        space["offsets"] = {a: hp.uniform(f"offset.{a}", -2 * spread, 2 * spread) for a in actions[:-1]}
    if kind == "weighted_sum":
        base = float(np.std(objective)) or 1.0
        weights = {}
        for label in policy_labels(blueprint, blueprint.policy.params)[1:]:
            scale = base / (float(np.std(scores[label])) or 1.0)
            weights[label] = hp.uniform(f"weight.{label}", -tuning.weight_range * scale, tuning.weight_range * scale)
        space["weights"] = weights
    if tuning.explore is not None and blueprint.policy.exploration.type != "none":
        lo, hi = tuning.explore
        key = "temperature" if blueprint.policy.exploration.type == "softmax" else "epsilon"
        space[key] = hp.uniform(key, lo, hi) if hi > lo else lo
    return space


def tune(holdout: pd.DataFrame, blueprint: Blueprint, models: Mapping[str, object], *,
         max_evals: int | None = None, seed: int = 0, n_bootstrap: int = 200, on_trial=None) -> TuningResult:
    """Tune the policy's params on ``holdout`` (logged decisions with labels); see the module doc."""
    tuner = PolicyTuner(holdout, blueprint, models, seed=seed)
    space = search_space(blueprint, tuner.scores)
    max_evals = max_evals or blueprint.policy.tuning.max_evals
    untuned_params = {k: v for k, v in blueprint.policy.params.items()}
    untuned = tuner.evaluate(0, untuned_params)
    trials: list[Trial] = []

    def objective(sampled: dict) -> dict:
        params = {**untuned_params, **_plain(sampled)}
        trial = tuner.evaluate(len(trials) + 1, params)
        trials.append(trial)
        loss = -trial.objective if trial.feasible else INFEASIBLE * (1 + tuner.violation(trial)) - trial.objective
        log.info("trial %d/%d: %s -> %s %.5f %s%s", trial.number, max_evals, flat_params(_plain(sampled)),
                 blueprint.objectives.maximize, trial.objective,
                 " ".join(f"{k}={v:.4f}" for k, v in trial.guardrails.items()),
                 "" if trial.feasible else " (breaks a guardrail)")
        if on_trial is not None:
            on_trial(trial)
        return {"loss": float(loss), "status": STATUS_OK}

    if space:
        fmin(objective, space, algo=tpe.suggest, max_evals=max_evals, trials=Trials(),
             rstate=np.random.default_rng(seed), show_progressbar=False)
    notes: list[str] = []
    feasible = [t for t in trials if t.feasible]
    best = max(feasible, key=lambda t: t.objective) if feasible else None
    if not space:
        notes.append("nothing to tune: the policy has no tunable params and no explore range")
    elif best is None:
        notes.append("no trial met the guardrails: keeping the blueprint's params")
    elif untuned.feasible and best.objective < untuned.objective:
        notes.append("no trial beat the blueprint's params: keeping them")
        best = None
    chosen = best.params if best is not None else untuned_params
    evaluation = tuner.estimate(
        {"tuned": tuner.probabilities(chosen), "untuned": tuner.probabilities(untuned_params),
         "logged": tuner.logged}, blueprint.objectives.maximize,
        baseline="untuned", clip=blueprint.promotion.clip, n_bootstrap=n_bootstrap,
    )
    guardrails = blueprint.objectives.guardrails
    return TuningResult(params=dict(chosen), tuned=best is not None, trials=trials, untuned=untuned,
                        evaluation=evaluation, main_guardrail=guardrails[0].metric if guardrails else None,
                        notes=notes)


def _plain(sampled: Mapping[str, object]) -> dict[str, object]:
    """hyperopt's sample (numpy floats, nested dicts) as plain JSON-able values."""
    out: dict[str, object] = {}
    for key, value in sampled.items():
        out[key] = _plain(value) if isinstance(value, Mapping) else float(value)
    return out


def pareto_figure(result: TuningResult, blueprint: Blueprint):
    """Objective vs the main guardrail over the trials, with the estimated Pareto front."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    metric = result.main_guardrail
    objective = blueprint.objectives.maximize
    trials = result.trials or [result.untuned]
    if metric is None:
        ax.plot([t.number for t in trials], [t.objective for t in trials], "o")
        ax.set(xlabel="trial", ylabel=f"{objective} (DR estimate)", title="Tuning trials")
        return fig
    x = np.array([t.guardrails[metric] for t in trials])
    y = np.array([t.objective for t in trials])
    ok = np.array([t.feasible for t in trials])
    ax.scatter(x[ok], y[ok], label="feasible trial", alpha=0.7)
    ax.scatter(x[~ok], y[~ok], marker="x", color="grey", label="breaks a guardrail", alpha=0.7)
    order = np.argsort(x)
    front_x, front_y, best = [], [], -math.inf
    for i in order:  # non-dominated: more objective for no more of the guardrail metric
        if y[i] > best:
            best = y[i]
            front_x.append(x[i])
            front_y.append(y[i])
    ax.step(front_x, front_y, where="post", color="tab:green", label="estimated Pareto front")
    ax.scatter([result.untuned.guardrails[metric]], [result.untuned.objective], marker="s", color="black",
               label="blueprint params", zorder=3)
    chosen = [t for t in trials if t.params == result.params]
    if chosen:
        ax.scatter([chosen[0].guardrails[metric]], [chosen[0].objective], marker="*", s=200, color="tab:red",
                   label="chosen", zorder=4)
    for guardrail in blueprint.objectives.guardrails:
        if guardrail.metric == metric:
            for bound in (guardrail.max, guardrail.min):
                if bound is not None:
                    ax.axvline(bound, linestyle="--", color="tab:red", alpha=0.6)
    ax.set(xlabel=metric, ylabel=f"{objective} (DR estimate)", title="Policy tuning: objective vs guardrail")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
