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
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from looper_common.contracts.blueprint_specs import (  # noqa: F401 - the sections, re-exported: callers import them from here
    BELOW_LEVEL_CHECKS,
    DEFAULT_THRESHOLDS,
    RESERVED_COLUMNS,
    AlertThreshold,
    BlueprintError,
    CheckName,
    DecisionSpec,
    Duration,
    ExplorationSpec,
    FeatureSpec,
    Guardrail,
    HoldbackSpec,
    LabelSpec,
    ModelSpec,
    MonitoringSpec,
    Name,
    Objectives,
    PolicySpec,
    PolicyTuningSpec,
    PromotionSpec,
    ServingSpec,
    TuningSpec,
    _Strict,
    parse_duration,
)
from looper_common.contracts.config import SAFE_LOADER
from looper_common.contracts.tasks import task_problems

log = logging.getLogger(__name__)


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
