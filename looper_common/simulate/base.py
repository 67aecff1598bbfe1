"""What every traffic scenario provides: users, features, a hidden response model, the oracle.

A scenario is bound to one blueprint and checked against it, so the features it
produces are exactly the declared ones and every label's observation is emitted.
The oracle (``expected_reward``) is the expected value of the blueprint's
``objectives.maximize`` label as the label defines it: for a binary observation
sent at most once, P(event) * P(delay <= window).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from looper_common.contracts.blueprint import Blueprint
from looper_common.simulate.delays import LogNormalDelay

Features = dict[str, object]
Users = dict[str, np.ndarray]  # one array per static trait, one row per user
Outcome = tuple[str, float, float]  # observation name, value, delay after the decision (s)

_WINDOWED_PROBABILITY = ("any", "count", "max")  # equal for a 0/1 observation sent at most once


class ScenarioError(ValueError):
    """No scenario for a blueprint, or the scenario does not match the blueprint."""


class Scenario(ABC):
    """A synthetic population and its hidden response to each action of one blueprint."""

    name: ClassVar[str]
    actions: ClassVar[tuple[str, ...]]
    feature_types: ClassVar[dict[str, str]]
    categories: ClassVar[dict[str, tuple[str, ...]]]
    observations: ClassVar[tuple[str, ...]]  # every observation name the scenario emits
    delays: ClassVar[dict[str, LogNormalDelay]]  # observations drawn independently, with delays
    decisions_per_day: ClassVar[float | None] = None  # None: one per user; else a Poisson mean
    objective_aggregations: ClassVar[tuple[str, ...]] = _WINDOWED_PROBABILITY  # whose oracle it knows

    def __init__(self, blueprint: Blueprint) -> None:
        check_blueprint(self, blueprint)
        self.blueprint = blueprint
        self.objective = next(
            lb for lb in blueprint.labels if lb.name == blueprint.objectives.maximize
        )
        delay = self.delays[self.objective.observation]
        self._caught = delay.prob_within(self.objective.window_seconds)

    @abstractmethod
    def make_users(self, n: int, rng: np.random.Generator) -> Users:
        """Static traits of ``n`` synthetic users."""

    @abstractmethod
    def daily_features(self, users: Users, rng: np.random.Generator) -> list[Features]:
        """One day's features per user, as plain Python values of the declared types."""

    @abstractmethod
    def event_probabilities(self, features: Mapping[str, object], action: str) -> dict[str, float]:
        """Hidden model: P(observation ever arrives) for each key of ``delays``."""

    def sample_outcomes(
        self,
        features: Mapping[str, object],
        action: str,
        u: Sequence[float],
        z: Sequence[Sequence[float]],
    ) -> list[Outcome]:
        """Observations after serving ``action``, from uniforms ``u[k]`` and normals ``z[k]``.

        The draws are fixed per decision whatever the action (common random numbers),
        so two policies are compared on the same luck.
        """
        probs = self.event_probabilities(features, action)
        return [
            (name, 1.0, delay.seconds(z[k][0]))
            for k, (name, delay) in enumerate(self.delays.items())
            if u[k] < probs[name]
        ]

    def expected_reward(self, features: Mapping[str, object], action: str) -> float:
        """Expected value of the objective label if ``action`` is served (the oracle)."""
        return self.event_probabilities(features, action)[self.objective.observation] * self._caught

    def rewards(self, features: Mapping[str, object]) -> dict[str, float]:
        """Expected objective for every action, in the blueprint's action order."""
        return {a: self.expected_reward(features, a) for a in self.blueprint.decision.actions}

    def oracle_action(self, features: Mapping[str, object]) -> str:
        """The action with the highest expected objective."""
        rewards = self.rewards(features)
        return max(rewards, key=rewards.__getitem__)


def check_blueprint(scenario: Scenario, blueprint: Blueprint) -> None:
    """Raise ScenarioError unless ``scenario`` produces what ``blueprint`` declares."""
    where = f"scenario {scenario.name!r} vs blueprint {blueprint.name!r}"
    problems = []
    if set(blueprint.decision.actions) != set(scenario.actions):
        problems.append(f"actions {blueprint.decision.actions} != {list(scenario.actions)}")
    declared = {f.name: f.type for f in blueprint.features}
    if declared != scenario.feature_types:
        problems.append(f"features {declared} != {scenario.feature_types}")
    for spec in blueprint.features:
        domain = scenario.categories.get(spec.name, ())
        if spec.values is not None and not set(domain) <= set(spec.values):
            problems.append(f"feature {spec.name!r}: {list(domain)} not within {spec.values}")
    for label in blueprint.labels:
        if label.observation not in scenario.observations:
            problems.append(f"label {label.name!r}: {label.observation!r} never emitted")
    objective = next(lb for lb in blueprint.labels if lb.name == blueprint.objectives.maximize)
    oracle_known = objective.observation in scenario.delays
    if objective.aggregation not in scenario.objective_aggregations or not oracle_known:
        problems.append(
            f"objective {objective.name!r} ({objective.aggregation} of {objective.observation!r}) "
            f"has no oracle: use {' or '.join(scenario.objective_aggregations)} of an observation it emits"
        )
    if problems:
        raise ScenarioError(f"{where}: " + "; ".join(problems))
