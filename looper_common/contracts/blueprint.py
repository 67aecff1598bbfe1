"""Strategy blueprints: one YAML file per decision point, loaded into strict models.

A blueprint's version is a hash of its normalized content (defaults applied, keys
sorted), so the same configuration always has the same version and any change,
however small, gets a new one. The version is stamped on every event, table row,
MLflow run and published policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from looper_common.contracts.config import SAFE_LOADER
from looper_common.contracts.rollout_spec import CanaryEvidence, CanarySpec, Stage
from looper_common.contracts.tasks import task_problems

log = logging.getLogger(__name__)

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
    "feature_psi", "feature_missing", "unseen_categories", "score_psi", "label_rate_shift", "calibration_gap",
    "default_share", "propensity_mismatch", "replay_mismatch", "feedback_age_h",
    "late_rate", "orphan_rate", "quarantine_rate", "redis_memory_share", "online_lift_lower",
]


class AlertThreshold(_Strict):
    """A check's alert levels: a value above ``warn`` warns, above ``critical`` fails the monitor task."""

    warn: float | None = None
    critical: float | None = None


# Levels that leave a clean simulated run of every shipped blueprint without an alert.
# online_lift_lower alerts when the lift's lower bound is *below* the negated level.
DEFAULT_THRESHOLDS: dict[str, AlertThreshold] = {
    "feature_psi": AlertThreshold(warn=0.1, critical=0.25),
    "feature_missing": AlertThreshold(warn=0.05, critical=0.5),
    "unseen_categories": AlertThreshold(warn=0.01, critical=0.1),
    "default_share": AlertThreshold(warn=0.1, critical=0.3),
    "propensity_mismatch": AlertThreshold(critical=0.0),
    "replay_mismatch": AlertThreshold(critical=0.0),
    "feedback_age_h": AlertThreshold(warn=6.0, critical=12.0),
    "quarantine_rate": AlertThreshold(warn=0.01, critical=0.05),
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


class Blueprint(_Strict):
    name: Name
    description: str = ""
    decision: DecisionSpec
    features: list[FeatureSpec] = Field(min_length=1)
    labels: list[LabelSpec] = Field(min_length=1)
    model: ModelSpec
    policy: PolicySpec
    objectives: Objectives
    promotion: PromotionSpec = PromotionSpec()
    schedule: str = "@daily"
    # event time vs arrival (DESIGN.md §3): the join for day D waits until ingestion's
    # watermark has passed D's end plus ``allowed_lateness``; feedback that arrives after
    # its examples were written, within ``late_horizon`` days of them, is counted late
    # (``count``) or rewrites those examples on the next run (``relabel``)
    allowed_lateness: Duration = "1h"
    late_feedback: Literal["count", "relabel"] = "count"
    late_horizon: Duration = "7d"
    monitoring: MonitoringSpec = MonitoringSpec()
    holdback: HoldbackSpec | None = None
    serving: ServingSpec = ServingSpec()

    @model_validator(mode="after")
    def _consistent(self) -> Blueprint:
        for kind, items in (("feature", self.features), ("label", self.labels)):
            names = [item.name for item in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} names: {dupes}")
        labels = [label.name for label in self.labels]
        clashes = sorted(({f.name for f in self.features} | set(labels)) & RESERVED_COLUMNS)
        if clashes:
            raise ValueError(f"feature/label names {clashes} are reserved column names; rename them")
        overlap = sorted({f.name for f in self.features} & set(labels))
        if overlap:
            raise ValueError(f"names {overlap} are used for both a feature and a label")
        if self.objectives.maximize not in labels:
            raise ValueError(f"objectives.maximize {self.objectives.maximize!r} is not a label {labels}")
        batch = [f.name for f in self.features if f.source == "batch"]
        if batch and self.serving.mode != "hybrid":
            raise ValueError(f"features {batch} have source: batch, which only serving.mode hybrid supplies")
        if self.policy.type in ("threshold", "uplift") and len(self.decision.actions) != 2:
            raise ValueError(f"policy type {self.policy.type!r} needs exactly 2 actions")
        if problems := task_problems(self):
            raise ValueError("; ".join(problems))
        return self

    @cached_property
    def version(self) -> str:
        """Content hash of the normalized blueprint (12 hex characters)."""
        content = self.model_dump(mode="json")
        if self.serving == ServingSpec():  # the default serving leaves the versions of existing blueprints as they were
            content.pop("serving")
        for rollout in ("stage", "canary", "require_canary"):  # likewise the default rollout (rollout_spec)
            if content["promotion"][rollout] == PromotionSpec.model_fields[rollout].default:
                content["promotion"].pop(rollout)
        for label in content["labels"]:  # as does a label without classes
            if label["classes"] is None:
                label.pop("classes")
        if self.policy.exploration.cold_start is None:  # likewise an unset cold_start
            content["policy"]["exploration"].pop("cold_start")
        for feature in content["features"]:  # and request features
            if feature["source"] == "request":
                feature.pop("source")
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def allowed_lateness_seconds(self) -> int:
        return int(parse_duration(self.allowed_lateness).total_seconds())

    @property
    def late_horizon_days(self) -> int:
        """Run dates back from the current one whose examples are checked for late feedback."""
        return max(1, -(-int(parse_duration(self.late_horizon).total_seconds()) // 86400))

    @property
    def max_window_seconds(self) -> int:
        """The longest label window: a decision is mature once it has passed."""
        return max(label.window_seconds for label in self.labels)


def parse_blueprint(data: object, source: str = "<blueprint>") -> Blueprint:
    """Validate already-parsed YAML; errors name ``source`` and each field path."""
    if not isinstance(data, dict):
        raise BlueprintError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return Blueprint(**data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see DESIGN.md §2)"
            lines.append(f"{source}: {loc}: {msg}")
        raise BlueprintError("\n".join(lines)) from None



def load_blueprint(path: str | Path) -> Blueprint:
    """Load one blueprint file; its ``name`` must match the file name."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER)
    except FileNotFoundError:
        raise BlueprintError(f"{path}: no such blueprint file") from None
    except yaml.YAMLError as err:
        raise BlueprintError(f"{path}: not valid YAML: {err}") from None
    blueprint = parse_blueprint(data, str(path))
    if blueprint.name != path.stem:
        raise BlueprintError(
            f"{path}: name: {blueprint.name!r} must match the file name ({path.stem!r})"
        )
    return blueprint


class BlueprintSet(dict[str, Blueprint]):
    """The valid blueprints of a folder keyed by name; ``invalid`` maps each bad file's stem to its error.

    A dict, so callers use it as one; ``invalid`` lets them say why a blueprint they
    were asked for is missing.
    """

    def __init__(self, valid: dict[str, Blueprint], invalid: dict[str, str]):
        super().__init__(valid)
        self.invalid = invalid


def load_blueprints(directory: str | Path, *, strict: bool = False) -> BlueprintSet:
    """Load every ``*.yaml`` in ``directory``, keyed by name.

    A bad file is logged (file name, field, reason) and left out, so one blueprint's
    mistake never stops the others: the SDK, the jobs and the DAG factory all load
    through here. ``strict`` raises :class:`BlueprintError` with every error instead.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BlueprintError(f"{directory}: blueprints folder does not exist")
    blueprints: dict[str, Blueprint] = {}
    invalid: dict[str, str] = {}
    for path in sorted(directory.glob("*.y*ml")):
        try:
            blueprint = load_blueprint(path)
        except BlueprintError as err:
            invalid[path.stem] = str(err)
            continue
        blueprints[blueprint.name] = blueprint
    if invalid and strict:
        raise BlueprintError("\n".join(invalid.values()))
    for error in invalid.values():
        log.error("invalid blueprint, left out (every other blueprint keeps working): %s", error)
    return BlueprintSet(blueprints, invalid)
