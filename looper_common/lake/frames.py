"""Arrow rows of the lake as the pandas frames the training, evaluation and publishing steps use."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas: timestamps as naive UTC wall times, dates and maps as Python objects."""
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            column = column.cast(pa.timestamp(field.type.unit))
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names).to_pandas(
        date_as_object=True, maps_as_pydicts="strict", coerce_temporal_nanoseconds=True
    )
