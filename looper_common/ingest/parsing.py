"""Parse raw stream entries into bronze and quarantine rows, with a reason for every rejected one.

What is rejected, and the reason's words, is ``ingest.reasons`` (the rules themselves
are ``contracts.event_rules``, which the SDK applies too). Valid events become bronze
rows, one per ``event_id``, their features as text (``json_values.feature_texts``). An
``event_id`` seen again in the batch with the same row is the same event (nothing is
added); with a different row it is quarantined as ``duplicate_event_id_conflict``
under the key ``stream:<stream>:<entry id>`` (``streams`` does the same against the
table, within the configured horizon). The common case is decoded straight into the
typed structs and checked for values only; an entry that fails, or whose payload has an
escape that may be a lone surrogate, is decoded again as plain JSON to name every
problem. Any other error while handling one entry quarantines that entry with the
error's class and message; the batch goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from looper_common.contracts import event_rules, events
from looper_common.contracts.blueprint import Blueprint
from looper_common.ingest import json_values as jv
from looper_common.ingest.reasons import Rules, payload_reasons, value_reasons
from looper_common.lake.tables import BRONZE_DECISIONS, BRONZE_OBSERVATIONS, QUARANTINE

Entry = tuple[str, str, "bytes | str | None"]  # stream, stream id, payload
SOURCE = "ingest_events"
CONFLICT = "duplicate_event_id_conflict"
_DAY_MS = event_rules.DAY_MS
_MIN_DAY, _MAX_DAY = event_rules.MIN_TS_MS // _DAY_MS, event_rules.MAX_TS_MS // _DAY_MS


@dataclass
class TableRows:
    """Rows for one table, in its schema's column order, unique by event_id."""

    partition_by: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # event_id -> index in rows
    keys: set[tuple] = field(default_factory=set)  # partition values present, in partition_by order
    same: int = 0  # rows given again with the same values (one row kept)

    def add(self, event_id: str, row: tuple, key: tuple) -> bool:
        """Add ``row`` unless ``event_id`` is there; False if it is, with another row (a conflict).

        Rows are compared without their last column, the date (for quarantine the arrival's).
        """
        at = self.seen.get(event_id)
        if at is not None:
            if self.rows[at][:-1] != row[:-1]:
                return False
            self.same += 1
            return True
        self.seen[event_id] = len(self.rows)
        self.rows.append(row)
        self.keys.add(key)
        return True

    def remove(self, event_ids: set[str]) -> list[tuple]:
        """Take the rows of ``event_ids`` out (found in the table already); returns them."""
        taken = [row for row in self.rows if row[0] in event_ids]
        self.rows = [row for row in self.rows if row[0] not in event_ids]
        self.seen = {row[0]: i for i, row in enumerate(self.rows)}
        return taken

    @property
    def partitions(self) -> dict[str, set]:
        """Partition column -> the values present (what a MERGE needs to read of the target)."""
        return {column: {key[i] for key in self.keys} for i, column in enumerate(self.partition_by)}


@dataclass
class ParsedBatch:
    """One batch parsed: decisions ``(event_id, ..., ts_ms, ..., date_days)``, observations, quarantine."""

    decisions: TableRows = field(default_factory=lambda: TableRows(BRONZE_DECISIONS.partition_by))
    observations: TableRows = field(default_factory=lambda: TableRows(BRONZE_OBSERVATIONS.partition_by))
    quarantine: TableRows = field(default_factory=lambda: TableRows(QUARANTINE.partition_by))
    entries: int = 0
    payloads: dict[str, tuple[str, str, bytes | str | None]] = field(default_factory=dict)  # event_id -> entry

    @property
    def resent(self) -> int:
        """Entries that repeated an event of the batch with the same values (kept once)."""
        return self.decisions.same + self.observations.same + self.quarantine.same


class _Decision(msgspec.Struct, tag_field="kind", tag=events.DECISION):
    """A decision event whose every field has its JSON type (the checks of ``reasons.FIELD_CHECKS``)."""

    event_id: str
    decision_id: str
    blueprint: str
    blueprint_version: str
    unit_id: str
    ts: int
    features: dict[str, Any]
    action: str
    propensity: float
    action_probs: dict[str, float]
    is_default: bool
    scores: dict[str, float] | None = None
    policy_version: str | None = None
    default_reason: str | None = None
    variant: str | None = None
    shadow_version: str | None = None
    shadow_action: str | None = None
    shadow_scores: dict[str, float] | None = None


class _Observation(msgspec.Struct, tag_field="kind", tag=events.OBSERVATION):
    """An observation event whose every field has its JSON type."""

    event_id: str
    decision_id: str
    blueprint: str
    name: str
    value: float
    ts: int


_decode_typed = msgspec.json.Decoder(_Decision | _Observation).decode
_decode_json = msgspec.json.Decoder().decode


def _may_hold_surrogate(payload: bytes | str) -> bool:
    """A ``\\udXXX`` escape (a lone surrogate needs one; msgspec decodes it into the str)."""
    if isinstance(payload, bytes):
        return b"\\ud" in payload or b"\\uD" in payload
    return "\\ud" in payload or "\\uD" in payload or not payload.isascii()


def parse_entries(
    entries: Iterable[Entry], blueprints: Mapping[str, Blueprint],
    limits: event_rules.EventLimits = event_rules.DEFAULT_LIMITS,
) -> ParsedBatch:
    """Entries ``(stream, stream_id, payload)`` to bronze rows and quarantine rows with reasons."""
    rules = Rules.of(blueprints, limits)
    batch = ParsedBatch()
    stream_blueprints: dict[str, str] = {}
    max_bytes = limits.max_event_bytes
    for stream, stream_id, payload in entries:
        batch.entries += 1
        try:
            stream_blueprint = stream_blueprints.get(stream)
            if stream_blueprint is None:
                stream_blueprint = stream_blueprints[stream] = events.blueprint_of_stream(stream)
            arrival_ms = int(stream_id.split("-", 1)[0])
            error: Exception | None = None
            if payload and len(payload) <= max_bytes:
                try:
                    event = _decode_typed(payload)
                except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
                    error = exc
                else:
                    if _may_hold_surrogate(payload) and event_rules.invalid_value(_decode_json(payload)):
                        pass
                    elif type(event) is _Decision:
                        if not value_reasons(
                            event.blueprint, event.ts, arrival_ms, stream_blueprint, rules, event.action,
                            event.propensity, event.features,
                        ):
                            _add_decision(batch, event, stream, stream_id, payload)
                            continue
                    elif not value_reasons(event.blueprint, event.ts, arrival_ms, stream_blueprint, rules):
                        _add_observation(batch, event, stream, stream_id, payload)
                        continue
            _add_rejected(batch, rules, stream, stream_id, payload, stream_blueprint, arrival_ms, error)
        except Exception as exc:  # noqa: BLE001 - one entry's failure is that entry's quarantine reason
            quarantine_entry(batch, stream, stream_id, payload, [f"{type(exc).__name__}: {exc}"])
    return batch


def _add_decision(batch: ParsedBatch, event: _Decision, stream: str, stream_id: str, payload: Any) -> None:
    ts = event.ts
    date = ts // _DAY_MS
    row = (
        event.event_id, event.decision_id, event.blueprint, event.blueprint_version, event.unit_id, ts,
        jv.feature_texts(event.features), event.action, event.propensity, event.action_probs, event.scores,
        event.policy_version, event.is_default, event.default_reason, event.variant, event.shadow_version,
        event.shadow_action, event.shadow_scores, date,
    )
    if not batch.decisions.add(event.event_id, row, (event.blueprint, date)):
        conflict(batch, stream, stream_id, payload, event.event_id)
    else:
        batch.payloads.setdefault(event.event_id, (stream, stream_id, payload))


def _add_observation(batch: ParsedBatch, event: _Observation, stream: str, stream_id: str, payload: Any) -> None:
    ts = event.ts
    date = ts // _DAY_MS
    row = (event.event_id, event.decision_id, event.blueprint, event.name, event.value, ts, date)
    if not batch.observations.add(event.event_id, row, (event.blueprint, date)):
        conflict(batch, stream, stream_id, payload, event.event_id)
    else:
        batch.payloads.setdefault(event.event_id, (stream, stream_id, payload))


def conflict(batch: ParsedBatch, stream: str, stream_id: str, payload: Any, event_id: str, where: str = "") -> None:
    """Quarantine an entry whose event_id another event holds (in this batch, or ``where``)."""
    reason = f"{CONFLICT}: event_id {event_id} is taken by a different event{where}"
    quarantine_entry(batch, stream, stream_id, payload, [reason])


def _text(value: object) -> str | None:
    return value if event_rules.is_text(value) else None


def _arrival_day(stream_id: str) -> int:
    """The entry's arrival date (days), within what a date holds."""
    try:
        day = int(stream_id.split("-", 1)[0]) // _DAY_MS
    except ValueError:
        return 0
    return min(max(day, _MIN_DAY), _MAX_DAY)


def quarantine_entry(
    batch: ParsedBatch, stream: str, stream_id: str, payload: bytes | str | None, reasons: list[str],
    doc: Mapping[str, Any] | None = None, stream_blueprint: str | None = None, limit: int | None = None,
) -> None:
    """One quarantine row for an entry: its event_id (else ``stream:<stream>:<id>``), reasons, payload as text.

    A payload longer than ``limit`` is kept up to it; a text that cannot be stored is replaced.
    """
    doc = doc or {}
    event_id = _text(doc.get("event_id"))
    if event_id is None or reasons[0].startswith(CONFLICT):
        event_id = f"stream:{stream}:{stream_id}"
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    if text is not None and not event_rules.is_text(text):
        text = text.encode("utf-8", "replace").decode()
    if text is not None and limit is not None and len(text) > limit:
        text = text[:limit]
        reasons = [*reasons, f"payload kept up to its first {limit} characters"]
    arrival = _arrival_day(stream_id)
    blueprint = _text(doc.get("blueprint")) or stream_blueprint or events.blueprint_of_stream(stream)
    row = (event_id, blueprint, _text(doc.get("kind")), "; ".join(reasons), text or None, SOURCE, arrival)
    if not batch.quarantine.add(event_id, row, (arrival,)):
        # another bad event under the same event_id: kept under its entry's key
        key = f"stream:{stream}:{stream_id}"
        batch.quarantine.add(key, (key, *row[1:]), (arrival,))


def _add_rejected(
    batch: ParsedBatch, rules: Rules, stream: str, stream_id: str, payload: bytes | str | None,
    stream_blueprint: str, arrival_ms: int, error: Exception | None,
) -> None:
    """Quarantine an entry the typed path did not take, with every reason it fails.

    A payload the typed decoder refused for nothing the checks name (a key given twice,
    once with the wrong type) keeps msgspec's message as its reason.
    """
    reasons, doc = payload_reasons(payload, arrival_ms, stream_blueprint, rules)
    if not reasons:
        reasons = [f"invalid event: {error}"]
    quarantine_entry(batch, stream, stream_id, payload, reasons, doc, stream_blueprint, rules.limits.max_event_bytes)
