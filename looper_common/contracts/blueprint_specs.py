"""The sections of a blueprint (decision, features, labels, model, policy, promotion, ...).

Each section is a strict pydantic model; ``blueprint.Blueprint`` puts them together,
checks what spans sections and computes the version. Names are re-exported from
``looper_common.contracts.blueprint``, where callers import them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from looper_common.contracts.rollout_spec import CanaryEvidence, CanarySpec, Stage

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+$", min_length=1, max_length=64)]
RESERVED_COLUMNS = frozenset({
    "decision_id", "unit_id", "ts", "blueprint", "blueprint_version", "action", "propensity",
    "action_probs", "scores", "policy_version", "is_default", "date", "matured_date", "features",
    "label", "value", "event_id",
})
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``30m``, ``24h``, ``7d`` into a timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid duration {text!r}: use a positive number and s, m, h or d (24h)")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _check_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]


class BlueprintError(ValueError):
    """A blueprint file is invalid; each line names the file, the field path and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    name: Name
    type: Literal["float", "int", "bool", "category"]
    values: list[str] | None = None  # optional known domain of a category feature
    # request: product code passes it to get_decision. batch: only the batch side knows it
    # (an aggregate over the unit's history); with serving.mode hybrid the request may omit
    # it and the unit's published entry supplies its latest value
    source: Literal["request", "batch"] = "request"

    @model_validator(mode="after")
    def _values_only_for_category(self) -> FeatureSpec:
        if self.values is not None and self.type != "category":
            raise ValueError("values is only allowed for type: category")
        return self


class DecisionSpec(_Strict):
    actions: list[Name] = Field(min_length=2)
    default_action: Name

    @model_validator(mode="after")
    def _default_is_an_action(self) -> DecisionSpec:
        if len(set(self.actions)) != len(self.actions):
            raise ValueError(f"actions must be unique, got {self.actions}")
        if self.default_action not in self.actions:
            raise ValueError(f"default_action {self.default_action!r} is not one of {self.actions}")
        return self


class LabelSpec(_Strict):
    name: Name
    observation: Name
    window: Duration
    aggregation: Literal["any", "sum", "count", "max", "last"] = "any"
    default: float = 0.0
    classes: dict[int, float] | None = None  # multiclass: each class code's reward (contracts/tasks.py)

    @property
    def window_seconds(self) -> int:
        return int(parse_duration(self.window).total_seconds())


class TuningSpec(_Strict):
    max_evals: int = Field(30, ge=1, le=10_000)


class ModelSpec(_Strict):
    task: Literal["binary", "multiclass", "regression"]
    families: list[Literal["hist_gbdt", "logistic", "linear", "random_forest"]] = Field(
        default_factory=lambda: ["hist_gbdt", "logistic"], min_length=1
    )
    tuning: TuningSpec = TuningSpec()


class ExplorationSpec(_Strict):
    type: Literal["none", "epsilon_greedy", "softmax"] = "epsilon_greedy"
    epsilon: float = Field(0.05, ge=0.0, le=1.0)
    temperature: float = Field(1.0, gt=0.0)
    floor: float = Field(0.0, ge=0.0, lt=1.0)  # minimum probability of any action
    # epsilon of the default action's epsilon-greedy while no policy version is active: a
    # first day logged with more of every action gives the first model something to learn
    cold_start: float | None = Field(None, ge=0.0, le=1.0)


class PolicyTuningSpec(_Strict):
    """What ``tune_policy`` searches: the policy's params, and the exploration within ``explore``."""

    max_evals: int = Field(20, ge=1, le=10_000)
    explore: tuple[float, float] | None = None  # epsilon (or softmax temperature) range; None: not tuned
    weight_range: float = Field(2.0, gt=0.0)  # weighted_sum weights in [-r, r] (scaled to the score spread)

    @model_validator(mode="after")
    def _ordered(self) -> PolicyTuningSpec:
        if self.explore is not None and not 0.0 <= self.explore[0] <= self.explore[1]:
            raise ValueError(f"explore must be [low, high] with 0 <= low <= high, got {list(self.explore)}")
        return self


class PolicySpec(_Strict):
    type: Literal["threshold", "argmax", "weighted_sum", "uplift"]
    params: dict[str, float | dict[str, float]] = Field(default_factory=dict)
    exploration: ExplorationSpec = ExplorationSpec()
    tuning: PolicyTuningSpec = PolicyTuningSpec()


class Guardrail(_Strict):
    metric: Name
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> Guardrail:
        if self.max is None and self.min is None:
            raise ValueError(f"guardrail {self.metric!r} needs max or min")
        return self


class Objectives(_Strict):
    maximize: Name
    guardrails: list[Guardrail] = Field(default_factory=list)


class PromotionSpec(_Strict):
    mode: Literal["auto", "manual"] = "auto"
    min_lift: float = 0.0
    gate: Literal["metric", "ope"] = "metric"
    clip: float | None = Field(None, gt=0.0)  # OPE importance-weight clip (None: unclipped)
    stage: Stage = "none"  # how the challenger meets live traffic before promotion (rollout_spec)
    canary: CanarySpec | None = None
    require_canary: CanaryEvidence | None = None

    @model_validator(mode="after")
    def _canary_share(self) -> PromotionSpec:
        if (self.stage == "canary") != (self.canary is not None):
            raise ValueError("stage: canary and canary: {share: ...} go together")
        return self


CheckName = Literal[
    "feature_psi", "feature_chi2", "feature_missing", "unseen_categories", "score_psi", "label_rate_shift",
    "calibration_gap", "default_share", "propensity_mismatch", "replay_mismatch", "feedback_age_h",
    "ingest_watermark_age_h", "feedback_delay_median_s", "feedback_delay_p95_s", "matured_share", "late_rate",
    "orphan_rate", "quarantine_rate", "stream_pending", "stream_lag", "redis_memory_share", "sdk_events_dropped",
    "sdk_dropped_share", "online_lift_lower",
]
# Checks that alert when the value falls *below* a level (a share that should stay high).
BELOW_LEVEL_CHECKS = frozenset({"matured_share"})


class AlertThreshold(_Strict):
    """A check's alert levels: a value beyond ``warn`` warns, beyond ``critical`` fails the monitor task.

    Beyond is above, except for BELOW_LEVEL_CHECKS (below) and ``online_lift_lower`` (the
    lift's lower bound below minus the level).
    """

    warn: float | None = None
    critical: float | None = None


# Levels that leave a clean simulated run of every shipped blueprint without an alert.
# No default for score_psi (every new champion moves the scores by design, far past 0.25
# in a clean demo run) nor label_rate_shift (an absolute difference in the label's own
# unit: a click rate, or minutes for watch_minutes; a working policy moves the
# objective's rate on purpose).
DEFAULT_THRESHOLDS: dict[str, AlertThreshold] = {
    "feature_psi": AlertThreshold(warn=0.1, critical=0.25),
    "feature_missing": AlertThreshold(warn=0.05, critical=0.5),
    "unseen_categories": AlertThreshold(warn=0.01, critical=0.1),
    "default_share": AlertThreshold(warn=0.1, critical=0.3),
    "propensity_mismatch": AlertThreshold(critical=0.0),
    "replay_mismatch": AlertThreshold(critical=0.0),
    "feedback_age_h": AlertThreshold(warn=6.0, critical=12.0),
    # the DAG's sensor fails 6 h after the deadline; behind the day's end, the day's counts are incomplete
    "ingest_watermark_age_h": AlertThreshold(warn=1.0, critical=6.0),
    "quarantine_rate": AlertThreshold(warn=0.01, critical=0.05),
    # any event the SDK gave up (its buffer full during an outage) warns; critical: 0 fails the task on one
    "sdk_events_dropped": AlertThreshold(warn=0.0),
    "orphan_rate": AlertThreshold(warn=0.05),
    "redis_memory_share": AlertThreshold(warn=0.8, critical=0.95),
}


class MonitoringSpec(_Strict):
    """What ``monitor_blueprint`` compares against and when it alerts (defaults: DEFAULT_THRESHOLDS)."""

    reference_days: int = Field(7, ge=1, le=90)  # the reference window of the drift checks
    replay_sample: int = Field(1000, ge=0)  # decisions replayed per day
    thresholds: dict[CheckName, AlertThreshold] = Field(default_factory=dict)  # overrides, per check

    def threshold(self, check: str) -> AlertThreshold:
        return self.thresholds.get(check) or DEFAULT_THRESHOLDS.get(check) or AlertThreshold()  # type: ignore[call-overload]


class HoldbackSpec(_Strict):
    """Serve the default to a stable hashed share of units, to measure the policy's lift over it."""

    share: float = Field(gt=0.0, lt=1.0)
class ServingSpec(_Strict):
    """How the SDK decides (DESIGN.md §6).

    ``lookup``: the unit's entry published in batch. ``online``: the champion's compact
    form scores the request's features. ``hybrid``: online scoring, the unit's published
    entry adding batch-only features, and the lookup alone when scoring is unavailable.
    """

    mode: Literal["lookup", "online", "hybrid"] = "lookup"
