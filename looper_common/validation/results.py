"""What a training-set validation found: failed expectations in words, and the report.

Each failed Great Expectations result becomes (expectation type, column, details) with
a few offending values, so the job's one-line message says what to fix without
opening the Data Docs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from great_expectations.core.expectation_validation_result import ExpectationValidationResult


@dataclass(frozen=True)
class FailedExpectation:
    expectation: str
    column: str | None
    details: str

    def __str__(self) -> str:
        where = f"({self.column})" if self.column else ""
        return f"{self.expectation}{where}: {self.details}"


@dataclass(frozen=True)
class ValidationReport:
    success: bool
    rows: int
    failed: list[FailedExpectation] = field(default_factory=list)
    result_path: str = ""
    data_docs_path: str = ""

    @property
    def message(self) -> str:
        """One line for logs and stderr: what passed, or each failed expectation and column."""
        if self.success:
            return f"validate_training_set: all expectations passed on {self.rows} rows"
        failures = "; ".join(str(f) for f in self.failed)
        return f"validate_training_set: {len(self.failed)} expectation(s) failed: {failures}"


def _sample(values: list | None, limit: int = 5) -> list:
    return sorted(set(values or []), key=str)[:limit]


def _details(kind: str, kwargs: dict, result: dict) -> str:
    unexpected = result.get("unexpected_count")
    sample = _sample(result.get("partial_unexpected_list"))
    if kind == "expect_column_to_exist":
        return "column is missing"
    if kind == "expect_column_values_to_be_of_type":
        return f"type {result.get('observed_value')}, expected {kwargs['type_']}"
    if kind == "expect_column_values_to_not_be_null":
        return f"{unexpected} null value(s) ({result.get('unexpected_percent', 0):.3g}%)"
    if kind == "expect_column_values_to_be_in_set":
        return f"{unexpected} unexpected value(s) {sample} not in {kwargs['value_set']}"
    if kind == "expect_column_values_to_be_between":
        low = "(" if kwargs.get("strict_min") else "["
        high = ")" if kwargs.get("strict_max") else "]"
        bounds = f"{low}{kwargs.get('min_value')}, {kwargs.get('max_value')}{high}"
        return f"{unexpected} value(s) outside {bounds}, e.g. {sample}"
    if kind == "expect_table_row_count_to_be_between":
        return f"{result.get('observed_value')} rows < {kwargs.get('min_value')}"
    if kind == "expect_column_max_to_be_between":
        newest, threshold = result.get("observed_value"), kwargs.get("min_value")
        return f"newest value {newest} is older than {threshold}"
    return json.dumps(result, default=str)[:200]


def describe_failure(result: ExpectationValidationResult) -> FailedExpectation:
    """A failed expectation as (type, column, what was wrong, with a few offending values)."""
    config = result.expectation_config
    error = result.exception_info or {}
    if error.get("raised_exception"):
        details = f"error: {error.get('exception_message')}"
    else:
        details = _details(config.type, config.kwargs, result.result or {})
    return FailedExpectation(config.type, config.kwargs.get("column"), details)
