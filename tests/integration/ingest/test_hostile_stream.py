"""Property: whatever is on the stream, ``jobs/ingest_events`` exits 0; each entry is in bronze or quarantine, once.

Hypothesis writes random stream entries to a real redis-server: random byte strings,
random JSON, valid events with fields replaced by hostile values (lone surrogates,
NaN and infinities, huge and far-off timestamps, wrong types, deep nesting, oversize
strings), duplicated ids, entries with other fields or none. Then it runs the job's
``main`` on the real settings and a lake of the example's own, and finds every place
that holds each entry: bronze, by its event_id with the row ingestion makes of that
entry alone (a different event under the same id is not it); the quarantine, under its
own key (``stream:<stream>:<id>``), else by its event_id and payload. Each entry must
be in exactly one place, and every row must hold some entry.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path

import msgspec
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from looper_common.contracts import events
from looper_common.contracts.blueprint import load_blueprints
from looper_common.ingest.parsing import parse_entries
from looper_common.lake.arrow_rows import rows_to_arrow
from looper_common.lake.engine import Lake
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
BLUEPRINT = load_blueprints(ROOT / "blueprints")["notification_send"]
STREAM = events.stream_key(BLUEPRINT.name)
FEATURES = {"days_since_last_visit": 2.5, "sessions_last_7d": 3, "push_opt_in": True, "country": "us",
            "platform": "ios"}
MAX_EVENT_BYTES = 65_536

hostile_values = st.one_of(
    st.sampled_from([
        "\ud800", "a\udfffb", "\U0001f600", math.nan, math.inf, -math.inf, 1e308, 10**30, -(10**30), 2**63,
        1e20, 253_402_300_800_000, -9_000_000_000_000_000, None, True, [], {}, "", "x" * 70_000,
    ]),
    st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=8).map(lambda b: b.hex()),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


def _decision(event_id: str) -> dict:
    now = int(time.time() * 1000)
    return {
        "kind": "decision", "event_id": event_id, "decision_id": event_id, "blueprint": BLUEPRINT.name,
        "blueprint_version": BLUEPRINT.version, "unit_id": "u1", "ts": now, "features": dict(FEATURES),
        "action": "send", "propensity": 0.5, "action_probs": {"send": 0.5, "skip": 0.5}, "is_default": False,
    }


def _observation(event_id: str) -> dict:
    return {"kind": "observation", "event_id": event_id, "decision_id": "d", "blueprint": BLUEPRINT.name,
            "name": "click", "value": 1.0, "ts": int(time.time() * 1000)}


@st.composite
def mutated_events(draw) -> bytes:
    """A valid event with a few fields (or feature values) replaced, added or removed."""
    event_id = draw(st.sampled_from(["e1", "e2", "e3"]) | st.text(max_size=6))
    event = draw(st.sampled_from([_decision, _observation]))(event_id)
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from([*event, "features.country", "features.days_since_last_visit", "extra"]))
        value = draw(hostile_values | json_values)
        if where.startswith("features.") and isinstance(event.get("features"), dict):
            event["features"][where.split(".", 1)[1]] = value
        elif draw(st.booleans()) and where in event:
            del event[where]
        else:
            event[where] = value
    return json.dumps(event).encode()


payloads = st.one_of(
    mutated_events(),
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3_000).map(lambda n: b'{"features": ' + b"[" * n + b"]" * n + b"}"),
    st.sampled_from([b"", b"\xff\xfe", b'{"kind": "decision", "unit_id": "\xed\xa0\x80"}', b"null"]),
)
entries = st.one_of(
    payloads.map(lambda p: {b"e": p}),
    st.dictionaries(st.binary(min_size=1, max_size=4), st.binary(max_size=40), min_size=1, max_size=3),
    st.tuples(payloads, st.binary(min_size=1, max_size=4)).map(lambda t: {t[1]: b"x", b"e": t[0]}),
)


def _event_id(payload: bytes | None) -> str | None:
    """The payload's event_id as ingestion reads it, if it is a string (Python's json reads NaN and surrogates)."""
    for decode in (msgspec.json.decode, json.loads):
        try:
            event_id = decode(payload).get("event_id") if payload else None
            break
        except (ValueError, UnicodeError, RecursionError, AttributeError):
            continue
    else:
        return None
    return event_id if isinstance(event_id, str) else None


def _comparable(row: dict) -> dict:
    """A row as two reads of it compare equal: maps (lists of pairs) sorted."""
    return {k: (sorted(v) if isinstance(v, list) else v) for k, v in row.items()}


def _own_bronze_row(entry_id: str, payload: bytes | None) -> tuple[str, dict] | None:
    """The bronze table and row ingestion makes of this entry alone (None if it would quarantine it)."""
    batch = parse_entries([(STREAM, entry_id, payload)], {BLUEPRINT.name: BLUEPRINT})
    for spec, rows in ((BRONZE_DECISIONS, batch.decisions), (BRONZE_OBSERVATIONS, batch.observations)):
        if rows.rows:
            return spec.name, _comparable(rows_to_arrow(rows.rows, spec.schema).to_pylist()[0])
    return None


def _places(
    entry_id: str, payload: bytes | None, bronze: dict[tuple[str, str], dict], quarantine: dict[str, str]
) -> list[tuple[str, str]]:
    """Every (table, key) holding this entry: a bronze table by its event_id with its own row, the
    quarantine under its entry key, or under its event_id (or ``<event_id>#payload:...``) with its payload.

    A decision and an observation may share an event_id: each table is keyed on its own.
    """
    places = []
    event_id = _event_id(payload)
    own = _own_bronze_row(entry_id, payload) if event_id is not None else None
    if own is not None and bronze.get((own[0], event_id)) == own[1]:
        places.append((own[0], event_id))
    entry_key = f"stream:{STREAM}:{entry_id}"
    if entry_key in quarantine:
        places.append(("quarantine", entry_key))
    elif event_id is not None:
        text = payload.decode("utf-8", "replace")[:MAX_EVENT_BYTES]
        places += [("quarantine", key) for key, stored in quarantine.items()
                   if (key == event_id or key.startswith(f"{event_id}#payload:")) and stored == text]
    return places


@pytest.fixture(scope="module")
def job_env(tmp_path_factory, redis_url):
    """The job's settings; each example gets a lake of its own (``next(lakes)``), so no row outlives it."""
    root = tmp_path_factory.mktemp("hostile")
    mp = pytest.MonkeyPatch()
    mp.setenv("LOOPER_REDIS_URL", redis_url)
    mp.setenv("LOOPER_HOME", str(ROOT))
    mp.setenv("LOOPER_BLUEPRINTS_DIR", str(ROOT / "blueprints"))

    def lakes():
        for n in itertools.count():
            mp.setenv("LOOPER_LAKE_ROOT", str(root / f"lake-{n}"))
            yield Lake(str(root / f"lake-{n}"))

    yield lakes()
    mp.undo()


def _ingest_job(argv: list[str]) -> int:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ingest_events_job", Path(ROOT, "jobs", "ingest_events.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(entries, min_size=1, max_size=12))
@example(batch=[  # one id in both bronze tables, then a different decision under it: quarantined, once
    {b"e": json.dumps(_decision("e1")).encode()}, {b"e": json.dumps(_observation("e1")).encode()},
    {b"e": json.dumps({**_decision("e1"), "unit_id": "u2"}).encode()},
])
def test_every_entry_ends_in_bronze_or_quarantine_and_the_job_exits_0(job_env, redis_url, batch):
    lake = next(job_env)  # a fresh lake and stream: an earlier example's rows cannot place this one's entries
    client = redis.Redis.from_url(redis_url)
    client.delete(STREAM)
    sent = [(client.xadd(STREAM, fields).decode(), fields.get(b"e") or None) for fields in batch]
    assert _ingest_job(["--blueprint", BLUEPRINT.name, "--batch-size", "5"]) == 0
    bronze: dict[tuple[str, str], dict] = {}
    for spec in (BRONZE_DECISIONS, BRONZE_OBSERVATIONS):
        rows = lake.read(spec).table.to_pylist()
        assert len({r["event_id"] for r in rows}) == len(rows)  # each event_id once in its table
        bronze |= {(spec.name, r["event_id"]): _comparable(r) for r in rows}
    rows = lake.read(QUARANTINE, columns=["event_id", "payload", "reason"]).table.to_pylist()
    quarantine = {r["event_id"]: r["payload"] for r in rows}
    assert all(r["reason"] for r in rows)
    places = {(entry_id, payload): _places(entry_id, payload, bronze, quarantine) for entry_id, payload in sent}
    not_exactly_once = {entry: where for entry, where in places.items() if len(where) != 1}
    assert not_exactly_once == {}  # each entry in exactly one table, under one key
    claimed = {place for where in places.values() for place in where}
    assert claimed == set(bronze) | {("quarantine", k) for k in quarantine}  # and no row holds none
    assert client.xlen(STREAM) == 0
    assert client.xpending(STREAM, events.INGEST_GROUP)["pending"] == 0
