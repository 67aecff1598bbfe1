"""The training-set suite built from a blueprint, and failure messages, without Spark."""

from __future__ import annotations

import time
from datetime import date, datetime

import great_expectations.expectations as gxe
import pytest
from great_expectations.core.expectation_validation_result import ExpectationValidationResult

from looper_common.validation.training_set import (
    FailedExpectation,
    ValidationReport,
    build_suite,
    describe_failure,
    widen,
)
from tests.conftest import make_blueprint

FEATURES = [
    {"name": "recency", "type": "float"},
    {"name": "visits", "type": "int"},
    {"name": "opted_in", "type": "bool"},
    {"name": "country", "type": "category", "values": ["us", "fr"]},
    {"name": "device", "type": "category"},
]


def _by(suite, kind: str) -> dict[str | None, dict]:
    """kwargs of the suite's expectations of one type, by column."""
    return {
        e.configuration.kwargs.get("column"): e.configuration.kwargs
        for e in suite.expectations if e.expectation_type == kind
    }


@pytest.fixture
def suite():
    blueprint = make_blueprint(features=FEATURES)
    history = {"recency": (0.5, 9.5), "visits": (3.0, 3.0), "country": (0, 1), "gone": (0, 1)}
    return build_suite(blueprint, history, min_rows=100, run_date=date(2026, 3, 15))


def test_schema_types_and_not_null(suite):
    types = {c: kw["type_list"] for c, kw in _by(suite, "expect_column_values_to_be_in_type_list").items()}
    # the types of the pandas frame examples_wide gives: an int column with a null is float64
    expected = {
        "recency": ["float64"], "visits": ["int64", "float64"], "opted_in": ["bool"],
        "country": ["str"], "clicks": ["float64"], "ts": ["datetime64[ns]"], "propensity": ["float64"],
    }
    assert {c: types[c] for c in expected} == expected
    assert not _by(suite, "expect_column_values_to_be_of_type")
    assert set(_by(suite, "expect_column_to_exist")) == set(types)
    not_null = _by(suite, "expect_column_values_to_not_be_null")
    required = ("decision_id", "unit_id", "ts", "action", "propensity", "clicked", "last_rating")
    for column in required:
        assert not_null[column].get("mostly", 1.0) == 1.0
    assert not_null["recency"]["mostly"] == not_null["device"]["mostly"] == 0.99


def test_domains(suite):
    in_set = _by(suite, "expect_column_values_to_be_in_set")
    assert in_set["country"]["value_set"] == ["fr", "us"]
    assert "device" not in in_set  # no declared values
    assert in_set["action"]["value_set"] == ["send", "skip"]
    assert in_set["clicked"]["value_set"] == [0.0, 1.0]  # objective of a binary task
    between = _by(suite, "expect_column_values_to_be_between")
    assert between["propensity"] == {
        "column": "propensity", "min_value": 0.0, "max_value": 1.0, "strict_min": True,
    }
    assert between["clicks"]["min_value"] == 0.0 and between["clicks"].get("max_value") is None
    assert not {"revenue", "best", "last_rating"} & (set(in_set) | set(between))  # sum, max, last


def test_ranges_from_history_are_widened(suite):
    between = _by(suite, "expect_column_values_to_be_between")
    assert (between["recency"]["min_value"], between["recency"]["max_value"]) == (-4.0, 14.0)
    assert (between["visits"]["min_value"], between["visits"]["max_value"]) == widen(3.0, 3.0)
    assert widen(3.0, 3.0) == (1.5, 4.5) and widen(0.0, 0.0) == (-0.5, 0.5)
    assert "country" not in between and "gone" not in between  # not numeric features
    no_history = build_suite(make_blueprint(features=FEATURES), None, min_rows=1)
    assert set(_by(no_history, "expect_column_values_to_be_between")) == {"propensity", "clicks"}


def test_row_count_and_freshness(suite):
    assert _by(suite, "expect_table_row_count_to_be_between")[None]["min_value"] == 100
    newest = _by(suite, "expect_column_max_to_be_between")["ts"]["min_value"]
    # end of Mar 15 - 2h (longest window) - 2 days, as the naive UTC time the pandas frame holds
    assert newest == datetime(2026, 3, 13, 22) and newest.tzinfo is None
    no_run_date = build_suite(make_blueprint(), None, min_rows=1)
    assert not _by(no_run_date, "expect_column_max_to_be_between")


def test_freshness_is_naive_utc_whatever_the_local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        suite = build_suite(make_blueprint(features=FEATURES), None, min_rows=1, run_date=date(2026, 3, 15))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert _by(suite, "expect_column_max_to_be_between")["ts"]["min_value"] == datetime(2026, 3, 13, 22)


def test_label_domains_follow_task_and_aggregation():
    labels = [
        {"name": "y", "observation": "o", "window": "1h", "aggregation": "sum"},
        {"name": "seen", "observation": "o", "window": "1h", "aggregation": "any", "default": -1},
    ]
    blueprint = make_blueprint(
        labels=labels, model={"task": "regression"}, objectives={"maximize": "y"},
        policy={"type": "argmax"},
    )
    suite = build_suite(blueprint, None, min_rows=1)
    assert _by(suite, "expect_column_values_to_be_in_set")["seen"]["value_set"] == [-1.0, 0.0, 1.0]
    assert "y" not in _by(suite, "expect_column_values_to_be_in_set")  # regression objective
    # a multiclass label's values are its declared classes
    outcome = {"name": "y", "observation": "o", "window": "1h", "aggregation": "max",
               "classes": {0: 0.0, 2: 6.0, 3: -5.0}}
    multiclass = make_blueprint(labels=[outcome], model={"task": "multiclass"}, objectives={"maximize": "y"},
                                policy={"type": "argmax"})
    suite = build_suite(multiclass, None, min_rows=1)
    assert _by(suite, "expect_column_values_to_be_in_set")["y"]["value_set"] == [0.0, 2.0, 3.0]


def _failed(expectation: gxe.Expectation, result: dict, error: str | None = None):
    return describe_failure(ExpectationValidationResult(
        success=False, expectation_config=expectation.configuration, result=result,
        exception_info={"raised_exception": error is not None, "exception_message": error},
    ))


def test_failure_messages_name_expectation_column_and_values():
    in_set = _failed(
        gxe.ExpectColumnValuesToBeInSet(column="country", value_set=["fr", "us"]),
        {"unexpected_count": 3, "partial_unexpected_list": ["xx", "zz", "xx"]},
    )
    assert str(in_set) == ("expect_column_values_to_be_in_set(country): "
                           "3 unexpected value(s) ['xx', 'zz'] not in ['fr', 'us']")
    rows = _failed(gxe.ExpectTableRowCountToBeBetween(min_value=100), {"observed_value": 12})
    assert str(rows) == "expect_table_row_count_to_be_between: 12 rows < 100"
    missing = _failed(gxe.ExpectColumnValuesToBeOfType(column="x", type_="DoubleType"), {},
                      error="column x does not exist")
    assert missing == FailedExpectation(
        "expect_column_values_to_be_of_type", "x", "error: column x does not exist"
    )
    report = ValidationReport(success=False, rows=12, failed=[in_set, rows])
    assert report.message == (
        "validate_training_set: 2 expectation(s) failed: "
        f"{in_set}; expect_table_row_count_to_be_between: 12 rows < 100"
    )
    assert ValidationReport(success=True, rows=5).message.endswith("passed on 5 rows")
