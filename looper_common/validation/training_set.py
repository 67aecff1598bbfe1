"""Great Expectations suite for a blueprint's training set, and its run for a run date.

The suite is derived from the blueprint alone (schema, completeness, domains, a
minimum size, freshness) plus numeric ranges learned from the examples that matured
before the run date. ``validate_training_set`` runs it on the wide table of every
example matured up to and including the run date (what training reads), writes the
validation result JSON and Data Docs under ``output_dir`` and returns a report whose
``message`` names each failed expectation and its column.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult
from great_expectations.data_context import AbstractDataContext
from great_expectations.data_context.types.base import (
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

from looper_common.contracts.blueprint import Blueprint, LabelSpec
from looper_common.labels.days import day_bounds
from looper_common.lake.engine import Lake
from looper_common.training.examples import load_training_frame
from looper_common.validation.results import FailedExpectation, ValidationReport, describe_failure

__all__ = [
    "FailedExpectation", "ValidationReport", "build_suite", "describe_failure",
    "freshness_threshold", "history_of", "run_suite", "validate_training_set", "widen",
]
log = logging.getLogger(__name__)

History = dict[str, tuple[float, float]]  # numeric feature -> (min, max) over earlier examples
# Column types of the pandas frame ``examples_wide`` gives: pandas holds an int column with a
# null as float64; GX checks an object column (strings; bools with a null) value by value.
FEATURE_TYPES = {"float": ["float64"], "int": ["int64", "float64"], "bool": ["bool"], "category": ["str"]}
CORE_COLUMNS = {
    "decision_id": ["str"], "unit_id": ["str"], "ts": ["datetime64[ns]"], "blueprint_version": ["str"],
    "action": ["str"], "propensity": ["float64"], "is_default": ["bool"],
}
REQUIRED_COLUMNS = ("decision_id", "unit_id", "ts", "action", "propensity")
NUMERIC = ("float", "int")
FEATURE_NOT_NULL_MOSTLY = 0.99  # a feature that fails to parse becomes null; a few are tolerated
RANGE_MARGIN = 0.5  # learned ranges are widened by this fraction of their width on each side
FRESHNESS_SLACK = timedelta(days=2)
RESULT_FILE = "validation_result.json"
DOCS_DIR = "data_docs"
DETAILED = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


def widen(lo: float, hi: float, margin: float = RANGE_MARGIN) -> tuple[float, float]:
    """``[lo, hi]`` widened by ``margin`` of its width (of its magnitude or 1 for a point)."""
    pad = margin * ((hi - lo) or max(abs(lo), abs(hi), 1.0))
    return lo - pad, hi + pad


def freshness_threshold(
    blueprint: Blueprint, run_date: date, slack: timedelta = FRESHNESS_SLACK
) -> datetime:
    """The oldest acceptable newest example: end of the run date - longest window - slack."""
    _, end = day_bounds(run_date)
    return end - timedelta(seconds=blueprint.max_window_seconds) - slack


def schema_expectations(blueprint: Blueprint) -> list[gxe.Expectation]:
    """Every core, feature and label column exists, has its type and is (mostly) set."""
    labels = [label.name for label in blueprint.labels]
    types = {
        **CORE_COLUMNS,
        **{f.name: FEATURE_TYPES[f.type] for f in blueprint.features},
        **dict.fromkeys(labels, ["float64"]),
    }
    typed = [gxe.ExpectColumnValuesToBeInTypeList(column=c, type_list=t) for c, t in types.items()]
    return [
        *[gxe.ExpectColumnToExist(column=c) for c in types],
        *typed,
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in (*REQUIRED_COLUMNS, *labels)],
        *[gxe.ExpectColumnValuesToNotBeNull(column=f.name, mostly=FEATURE_NOT_NULL_MOSTLY)
          for f in blueprint.features],
    ]


def label_domain(blueprint: Blueprint, label: LabelSpec) -> gxe.Expectation | None:
    """{0, 1} for the objective of a binary task, a multiclass label's declared classes, else what
    the label's aggregation can give."""
    if blueprint.model.task == "binary" and label.name == blueprint.objectives.maximize:
        return gxe.ExpectColumnValuesToBeInSet(column=label.name, value_set=[0.0, 1.0])
    if label.classes is not None:
        return gxe.ExpectColumnValuesToBeInSet(column=label.name, value_set=sorted(map(float, label.classes)))
    if label.aggregation == "any":
        values = sorted({0.0, 1.0, label.default})
        return gxe.ExpectColumnValuesToBeInSet(column=label.name, value_set=values)
    if label.aggregation == "count":
        lowest = min(0.0, label.default)
        return gxe.ExpectColumnValuesToBeBetween(column=label.name, min_value=lowest)
    return None  # sum, max, last: any real number


def domain_expectations(blueprint: Blueprint) -> list[gxe.Expectation]:
    """Declared category values, the blueprint's actions, propensity in (0, 1], label domains."""
    categories = [
        gxe.ExpectColumnValuesToBeInSet(column=f.name, value_set=sorted(f.values))
        for f in blueprint.features if f.values is not None
    ]
    labels = [label_domain(blueprint, label) for label in blueprint.labels]
    return [
        *categories,
        gxe.ExpectColumnValuesToBeInSet(column="action", value_set=blueprint.decision.actions),
        gxe.ExpectColumnValuesToBeBetween(
            column="propensity", min_value=0.0, max_value=1.0, strict_min=True
        ),
        *[e for e in labels if e is not None],
    ]


def range_expectations(
    blueprint: Blueprint, history: History | None, margin: float = RANGE_MARGIN
) -> list[gxe.Expectation]:
    """Numeric features within their historical range, widened; none without history."""
    numeric = {f.name for f in blueprint.features if f.type in NUMERIC}
    ranges = {name: widen(lo, hi, margin) for name, (lo, hi) in (history or {}).items()}
    return [
        gxe.ExpectColumnValuesToBeBetween(column=name, min_value=low, max_value=high)
        for name, (low, high) in sorted(ranges.items()) if name in numeric
    ]


def build_suite(
    blueprint: Blueprint,
    history: History | None,
    *,
    min_rows: int,
    run_date: date | None = None,
    margin: float = RANGE_MARGIN,
) -> gx.ExpectationSuite:
    """The suite for the blueprint's wide training table (``examples_wide``).

    Schema, types and not-null; domains; numeric ranges learned from ``history``; at
    least ``min_rows`` rows; with ``run_date``, the newest example is fresh enough.
    """
    expectations = [
        *schema_expectations(blueprint),
        *domain_expectations(blueprint),
        *range_expectations(blueprint, history, margin),
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows),
    ]
    if run_date is not None:
        # the pandas frame holds naive UTC timestamps: compare like with like
        newest = freshness_threshold(blueprint, run_date).astimezone(UTC).replace(tzinfo=None)
        expectations.append(gxe.ExpectColumnMaxToBeBetween(column="ts", min_value=newest))
    # given to the constructor: add_expectation() needs an active GX context
    suite = gx.ExpectationSuite(
        name=f"{blueprint.name}.training_set",
        expectations=expectations,
        meta={"blueprint": blueprint.name, "blueprint_version": blueprint.version},
    )
    if len(suite.expectations) != len(expectations):  # GX logs and drops invalid ones
        raise ValueError(f"{blueprint.name}: some expectations are invalid, see the log")
    return suite


def history_of(wide: pd.DataFrame, blueprint: Blueprint, before: date) -> History:
    """Min and max of each numeric feature over the wide examples matured before ``before``."""
    earlier = wide[wide["matured_date"] < before]
    history = {}
    for feature in blueprint.features:
        if feature.type in NUMERIC and earlier[feature.name].notna().any():
            history[feature.name] = (float(earlier[feature.name].min()), float(earlier[feature.name].max()))
    return history


def _context(docs_dir: Path) -> AbstractDataContext:
    """An in-memory GX context (nothing written to the repo) with one Data Docs site."""
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir),
        },
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={"looper": site},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def run_suite(
    wide: pd.DataFrame, suite: gx.ExpectationSuite, docs_dir: Path
) -> ExpectationSuiteValidationResult:
    """Validate a pandas DataFrame by a checkpoint that also builds Data Docs in ``docs_dir``.

    A first pass computes pass/fail only (``BOOLEAN_ONLY``: a few aggregations over the
    table). Only when it fails does a second pass collect offending values (``SUMMARY``:
    one more query per column expectation), so a good training set is read few times.
    """
    context = _context(docs_dir)
    batch = (
        context.data_sources.add_pandas("looper")
        .add_dataframe_asset("training_set")
        .add_batch_definition_whole_dataframe("run")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="training_set", data=batch, suite=context.suites.add(suite))
    )
    gate = _run_checkpoint(context, definition, wide, "gate", "BOOLEAN_ONLY")
    if gate.success:
        return gate
    shutil.rmtree(docs_dir, ignore_errors=True)  # the Data Docs show the detailed run only
    return _run_checkpoint(context, definition, wide, "details", DETAILED)


def _run_checkpoint(
    context: AbstractDataContext,
    definition: gx.ValidationDefinition,
    wide: pd.DataFrame,
    name: str,
    result_format: str | dict,
) -> ExpectationSuiteValidationResult:
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"validate_training_set_{name}",
        validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["looper"])],
        result_format=result_format,
    ))
    outcome = checkpoint.run(batch_parameters={"dataframe": wide})
    return next(iter(outcome.run_results.values()))


def validate_training_set(
    lake: Lake,
    blueprint: Blueprint,
    run_date: date,
    *,
    min_rows: int,
    output_dir: str | Path,
    lookback_days: int | None = None,
) -> ValidationReport:
    """Validate the training set for ``run_date``: every example matured up to and including it.

    That is what training reads; ``lookback_days`` limits it to the examples matured in
    the last N days for very large tables (numeric ranges then come from those before).
    A previous run's result JSON and Data Docs in ``output_dir`` are replaced.
    """
    output = Path(output_dir)
    shutil.rmtree(output / DOCS_DIR, ignore_errors=True)  # only what this function writes
    (output / RESULT_FILE).unlink(missing_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    since = run_date - timedelta(days=lookback_days - 1) if lookback_days else None
    everything = load_training_frame(lake, blueprint, run_date, None).frame
    history = history_of(everything, blueprint, since or run_date)
    suite = build_suite(blueprint, history, min_rows=min_rows, run_date=run_date)
    frame = everything[everything["matured_date"] >= since] if since else everything
    rows = len(frame)
    result = run_suite(frame.reset_index(drop=True), suite, output / DOCS_DIR)
    result_path = output / RESULT_FILE
    result_path.write_text(json.dumps(result.to_json_dict(), indent=2, default=str))
    report = ValidationReport(
        success=bool(result.success),
        rows=rows,
        failed=[describe_failure(r) for r in result.results if not r.success],
        result_path=str(result_path),
        data_docs_path=str(output / DOCS_DIR / "index.html"),
    )
    log.info("%s on %s: %d rows, %d failed expectation(s), result in %s",
             blueprint.name, run_date, rows, len(report.failed), report.result_path)
    return report
