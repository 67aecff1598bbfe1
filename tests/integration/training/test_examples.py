"""``load_training_frame``: silver examples pivoted to one row per decision, the same from delta-rs and Spark."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from looper_common.lake.engine import Lake, blueprint_dates
from looper_common.lake.tables import SILVER_EXAMPLES
from looper_common.training.examples import load_training_frame
from tests.conftest import make_blueprint

pytestmark = pytest.mark.integration
BP = make_blueprint()
RUN_DATE = date(2026, 1, 5)
COUNTRIES = ["us", "de", "fr", "é-ü"]


def example_rows(blueprint_name: str, matured: date, n: int) -> list[dict]:
    """``n`` decisions matured on ``matured``, one row per label of ``BP``; decision 3 has no ``clicks`` row."""
    rows = []
    for i in range(n):
        features = {"recency": str(i / 4), "visits": "n/a" if i == 5 else str(i), "opted_in": str(i % 3 == 0).lower(),
                    "country": COUNTRIES[i % 4]}
        for label in BP.labels:
            if i == 3 and label.name == "clicks":
                continue
            rows.append({
                "decision_id": f"{blueprint_name}-{matured:%m%d}-{i:02d}", "label": label.name,
                "value": float(i % 2) if label.name == "clicked" else float(i), "n_observations": i % 2,
                "first_feedback_s": None, "blueprint": blueprint_name, "blueprint_version": "v1",
                "unit_id": f"u{i % 7}",
                "ts": datetime.combine(matured - timedelta(days=1), datetime.min.time(), UTC) + timedelta(minutes=i),
                "features": features, "action": "send" if i % 2 else "skip", "propensity": 0.5,
                "action_probs": {"send": 0.5, "skip": 0.5}, "scores": None, "policy_version": None,
                "is_default": i == 0, "date": matured,
            })
    return rows


@pytest.fixture
def examples_lake(lake: Lake) -> Lake:
    """Five days of ``t_notify`` examples (up to the day after the run date) and one of another blueprint."""
    for offset in range(-3, 2):
        day = RUN_DATE + timedelta(days=offset)
        rows = pa.Table.from_pylist(example_rows(BP.name, day, 12), schema=SILVER_EXAMPLES.schema)
        lake.replace_partition(SILVER_EXAMPLES, rows, {"blueprint": BP.name, "date": day})
    other = pa.Table.from_pylist(example_rows("t_other", RUN_DATE, 4), schema=SILVER_EXAMPLES.schema)
    lake.replace_partition(SILVER_EXAMPLES, other, {"blueprint": "t_other", "date": RUN_DATE})
    return lake


def test_the_wide_frame_has_one_typed_row_per_decision_in_the_window(examples_lake):
    read = load_training_frame(examples_lake, BP, RUN_DATE, lookback_days=2)

    wide = read.frame
    assert (read.engine, read.version) == ("delta-rs", examples_lake.version(SILVER_EXAMPLES))
    assert sorted(set(wide["matured_date"])) == [RUN_DATE - timedelta(days=d) for d in (2, 1, 0)]
    assert len(wide) == 36 and wide["decision_id"].is_unique
    assert not wide["decision_id"].str.startswith("t_other").any()
    assert wide["ts"].is_monotonic_increasing and wide["ts"].dtype == "datetime64[ns]"
    row = wide.set_index("decision_id").loc[f"{BP.name}-{RUN_DATE:%m%d}-06"]
    assert (row["recency"], row["visits"], row["opted_in"], row["country"]) == (1.5, 6, True, "fr")
    assert (row["clicked"], row["clicks"], row["revenue"], row["action"]) == (0.0, 6.0, 6.0, "skip")
    assert row["ts"] == pd.Timestamp(datetime(2026, 1, 4, 0, 6))  # naive UTC
    assert row["action_probs"] == {"send": 0.5, "skip": 0.5}
    by_id = wide.set_index("decision_id")
    assert np.isnan(by_id.loc[f"{BP.name}-{RUN_DATE:%m%d}-03", "clicks"])  # no row for the label
    assert np.isnan(by_id.loc[f"{BP.name}-{RUN_DATE:%m%d}-05", "visits"])  # "n/a" does not parse as an int
    assert set(wide["country"]) == set(COUNTRIES)
    assert len(load_training_frame(examples_lake, BP, RUN_DATE, lookback_days=None).frame) == 48
    assert load_training_frame(examples_lake, make_blueprint(name="t_none"), RUN_DATE).frame.empty


def test_the_training_frame_read_by_spark_equals_delta_rs(spark, examples_lake):
    on_spark = dataclasses.replace(examples_lake, local_read_max_bytes=0)
    for lookback in (0, 2, None):
        expected = load_training_frame(examples_lake, BP, RUN_DATE, lookback)
        got = load_training_frame(on_spark, BP, RUN_DATE, lookback)
        assert (expected.engine, got.engine) == ("delta-rs", "spark")
        assert got.version == expected.version
        assert len(got.frame) >= 12
        pd.testing.assert_frame_equal(got.frame, expected.frame)


def test_over_max_rows_a_sample_of_whole_decisions_is_read_the_same_on_both_engines(spark, examples_lake):
    full = load_training_frame(examples_lake, BP, RUN_DATE, lookback_days=None, max_rows=1000)
    assert full.sampled_from is None and len(full.frame) == 48  # under the bound: everything

    rows = examples_lake.selected_rows(SILVER_EXAMPLES, blueprint_dates(BP.name, last=RUN_DATE))
    assert rows == 48 * len(BP.labels) - 4  # decision 3 of each day has no clicks row
    sample = load_training_frame(examples_lake, BP, RUN_DATE, lookback_days=None, max_rows=70)
    assert sample.sampled_from == rows
    assert 0 < len(sample.frame) < 48
    assert set(sample.frame["decision_id"]) < set(full.frame["decision_id"])
    # whole decisions: every label of a sampled decision came with it
    expected = full.frame.set_index("decision_id").loc[sample.frame["decision_id"]].reset_index()
    pd.testing.assert_frame_equal(sample.frame, expected, check_dtype=False)  # "n/a" (a float NaN) may be left out
    again = load_training_frame(examples_lake, BP, RUN_DATE, lookback_days=None, max_rows=70)
    pd.testing.assert_frame_equal(again.frame, sample.frame)  # a rerun reads the same sample

    on_spark = dataclasses.replace(examples_lake, local_read_max_bytes=0)
    got = load_training_frame(on_spark, BP, RUN_DATE, lookback_days=None, max_rows=70)
    assert (got.engine, got.sampled_from) == ("spark", rows)
    pd.testing.assert_frame_equal(got.frame, sample.frame)
