"""The live files of a Delta table's partitions, read from its transaction log in Python.

Delta's own ``filterFiles`` runs Spark jobs to rebuild the table state (seconds on two
cores); the log is a Parquet checkpoint plus a few JSON commits, which pyarrow and
``json`` read in milliseconds. Only what ingestion writes is handled: classic
checkpoints (one file or several parts); anything else returns None.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

import pyarrow.parquet as pq

_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet\Z")
_V2_CHECKPOINT = re.compile(r"\d{20}\.checkpoint\.[0-9a-f-]{36}\.(?:parquet|json)\Z")


def _checkpoint(names: list[str], version: int) -> tuple[int, list[str]] | None:
    """The newest complete classic checkpoint at or before ``version``: (its version, its files)."""
    parts: dict[int, dict[int, tuple[int, str]]] = {}
    for name in names:
        if _V2_CHECKPOINT.match(name):
            return None
        found = _CHECKPOINT.match(name)
        if found and int(found.group(1)) <= version:
            v = int(found.group(1))
            part, count = (int(found.group(2)), int(found.group(3))) if found.group(2) else (1, 1)
            parts.setdefault(v, {})[part] = (count, name)
    for v in sorted(parts, reverse=True):
        count = next(iter(parts[v].values()))[0]
        if len(parts[v]) == count:
            return v, [parts[v][i][1] for i in range(1, count + 1)]
    return -1, []


def live_files(root: str, version: int, partitions: Mapping[str, set[str]]) -> list[dict] | None:
    """The ``add`` actions live at ``version`` whose partition values are all in ``partitions``."""
    log = os.path.join(root, "_delta_log")
    checkpoint = _checkpoint(os.listdir(log), version)
    if checkpoint is None:
        return None
    start, files = checkpoint
    live: dict[str, dict] = {}
    for name in files:
        for add in pq.read_table(os.path.join(log, name), columns=["add"]).column("add").to_pylist():
            if add is not None:
                add["partitionValues"] = dict(add["partitionValues"] or ())
                live[add["path"]] = add
    for v in range(start + 1, version + 1):
        with open(os.path.join(log, f"{v:020d}.json"), encoding="utf-8") as commit:
            for line in commit:
                action = json.loads(line)
                if "add" in action:
                    live[action["add"]["path"]] = action["add"]
                elif "remove" in action:
                    live.pop(action["remove"]["path"], None)
    return [
        add for add in live.values()
        if all(add["partitionValues"].get(column) in values for column, values in partitions.items())
    ]
