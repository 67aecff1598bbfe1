"""A Delta table's state (live files, protocol, metadata), read from its transaction log in Python.

Delta's own ``filterFiles`` runs Spark jobs to rebuild the table state (seconds on two
cores); the log is a Parquet checkpoint plus a few JSON commits, which pyarrow and
``json`` read in milliseconds. Only classic checkpoints (one file or several parts) are
handled; anything else (v2 checkpoints) returns None and the caller uses Spark.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import pyarrow.parquet as pq

_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet\Z")
_COMMIT = re.compile(r"\d{20}\.json\Z")
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


@dataclass(frozen=True)
class LogState:
    """The table at ``version``: its live ``add`` actions by path, its protocol and metadata."""

    version: int
    files: dict[str, dict]
    protocol: dict
    metadata: dict


def local_root(path: str) -> str | None:
    """The directory of a table on a local path (plain or ``file:``); None for object stores."""
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else path
    return None


def latest_version(root: str) -> int | None:
    """The newest committed version (None when the table has no commit yet)."""
    try:
        names = os.listdir(os.path.join(root, "_delta_log"))
    except FileNotFoundError:
        return None
    versions = [int(name[:20]) for name in names if _COMMIT.match(name)]
    return max(versions) if versions else None


def _as_mapping(value) -> dict:
    """A map column as pyarrow gives it (pairs) or as JSON has it (an object)."""
    return dict(value or ())


def replay(root: str, version: int) -> LogState | None:
    """The state at ``version``: the newest classic checkpoint, then the commits after it."""
    log = os.path.join(root, "_delta_log")
    checkpoint = _checkpoint(os.listdir(log), version)
    if checkpoint is None:
        return None
    start, files = checkpoint
    live: dict[str, dict] = {}
    protocol: dict = {}
    metadata: dict = {}
    for name in files:
        table = pq.read_table(os.path.join(log, name), columns=["add", "protocol", "metaData"])
        for add in table.column("add").to_pylist():
            if add is not None:
                add["partitionValues"] = _as_mapping(add["partitionValues"])
                live[add["path"]] = add
        protocol = next((p for p in table.column("protocol").to_pylist() if p is not None), protocol)
        metadata = next((m for m in table.column("metaData").to_pylist() if m is not None), metadata)
    if metadata:
        metadata["configuration"] = _as_mapping(metadata.get("configuration"))
    for v in range(start + 1, version + 1):
        with open(os.path.join(log, f"{v:020d}.json"), encoding="utf-8") as commit:
            for line in commit:
                action = json.loads(line)
                if "add" in action:
                    live[action["add"]["path"]] = action["add"]
                elif "remove" in action:
                    live.pop(action["remove"]["path"], None)
                elif "protocol" in action:
                    protocol = action["protocol"]
                elif "metaData" in action:
                    metadata = action["metaData"]
                    metadata["configuration"] = _as_mapping(metadata.get("configuration"))
    return LogState(version, live, protocol, metadata)


def live_files(root: str, version: int, partitions: Mapping[str, set[str]]) -> list[dict] | None:
    """The ``add`` actions live at ``version`` whose partition values are all in ``partitions``."""
    state = replay(root, version)
    if state is None:
        return None
    return [
        add for add in state.files.values()
        if all(add["partitionValues"].get(column) in values for column, values in partitions.items())
    ]
