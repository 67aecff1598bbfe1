"""The per-decision work of ``LooperClient.get_decisions``, done once per batch where it can be.

A batch of decisions for one blueprint shares almost everything: the blueprint, the
served version and exploration spec, and, for epsilon-greedy, one distribution per
greedy action. A :class:`ServingPlan` holds what depends only on those (the event's
constant JSON, each distribution with its cumulative sums and its JSON), so a
decision costs its id, the draw from the id, one decode of its entry and one encode
of its features. The result is the same as deciding one at a time with
``exploration.action_distribution`` and ``draw_action`` and the reference encoder
(``encode_decision_event``): same ids for the same random bits, same action, same
event fields and values. Bytes may differ only in how a float is spelled (msgspec
writes ``0.00001`` where ``json`` wrote ``1e-05``); anything msgspec cannot encode
exactly (NaN, numpy scalars, ...) goes through ``json`` as before.
"""

from __future__ import annotations

import hashlib
import json
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence

import msgspec

from looper_common.contracts import events, ids
from looper_common.contracts.blueprint import Blueprint, ExplorationSpec
from looper_common.sdk.exploration import action_distribution, draw_action

_json_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_fast_encode = msgspec.json.Encoder().encode
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, msgspec.EncodeError)
# exploration.uniform_from_id's hash: a copy of an empty 8-byte BLAKE2b, then the id, gives the
# same digest as blake2b(id, digest_size=8) for less than the keyword call costs
_blake2b_8 = hashlib.blake2b(digest_size=8)
_from_bytes = int.from_bytes
_TWO_64 = float(1 << 64)  # u = the id's hash / 2**64, as exploration.uniform_from_id


class Decision(msgspec.Struct, frozen=True, gc=False):
    """One served decision, as ``get_decision`` returns it and its event logs it.

    Immutable, compared and printed field by field. ``gc=False``: the cyclic garbage
    collector does not track it (it holds strings, numbers and two dicts of numbers, so
    it cannot be part of a cycle), which spares a batch of a thousand decisions the
    collections their allocation would trigger. ``msgspec.structs.asdict`` gives its fields.
    """

    decision_id: str
    blueprint: str
    unit_id: str
    action: str
    propensity: float
    action_probs: dict[str, float]
    scores: dict[str, float] | None
    policy_version: str | None
    is_default: bool
    ts: int  # epoch milliseconds, UTC
    default_reason: str | None = None  # why the default was served (events.DEFAULT_REASONS)


def encode_decision_event(bp: Blueprint, d: Decision, features: Mapping[str, object]) -> bytes:
    """The decision event (DESIGN.md §3) with ``json``: the reference the batch path matches.

    A default decision's event carries ``default_reason``; a served one's has none.
    """
    doc = {
        "kind": events.DECISION,
        "event_id": d.decision_id,
        "decision_id": d.decision_id,
        "blueprint": bp.name,
        "blueprint_version": bp.version,
        "unit_id": d.unit_id,
        "ts": d.ts,
        "features": features,
        "action": d.action,
        "propensity": d.propensity,
        "action_probs": d.action_probs,
        "scores": d.scores,
        "policy_version": d.policy_version,
        "is_default": d.is_default,
    }
    if d.is_default:
        doc["default_reason"] = d.default_reason
    return _json_encode(doc).encode()


def encode_json(value: object) -> bytes:
    """Compact JSON of decoded JSON or features: msgspec, or ``json`` where they would differ.

    msgspec writes NaN and infinities as null and refuses numpy scalars; ``json`` writes
    NaN/Infinity and numbers, so any null or error goes the old way (a real null also
    comes out the same from both).
    """
    try:
        out = _fast_encode(value)
    except _ENCODE_ERRORS:
        return _json_encode(value).encode()
    return _json_encode(value).encode() if b"null" in out else out


class _Entry(msgspec.Struct, gc=False):
    """A published entry (``policy_store.encode_entry``): ``a`` a string, ``s`` numbers or null."""

    a: str
    s: dict[str, int | float] | None


_decode_entry = msgspec.json.Decoder(_Entry).decode


def decode_entry(raw: bytes) -> tuple[str, dict[str, float] | None]:
    """``policy_store.decode_entry`` checked: raises ``msgspec.DecodeError`` for a corrupt entry.

    Corrupt: not JSON as ingestion reads it (no NaN, nothing beyond a double's range),
    ``a`` missing or not a string, ``s`` missing or not an object of numbers (or null).
    Whether ``a`` is one of the blueprint's actions the serving plan checks.
    """
    doc = _decode_entry(raw)
    return doc.a, doc.s


def _literal(value: str | None) -> bytes:
    """JSON of a constant, escaped for use inside a ``%`` template."""
    return _json_encode(value).encode().replace(b"%", b"%%")


class _Distribution:
    """One action distribution with what drawing from it and logging it need."""

    __slots__ = ("probs", "cumulative", "drawable", "fragments")

    def __init__(self, probs: dict[str, float]) -> None:
        self.probs = probs
        # draw_action walks the actions not <= 0 in order, summing; the first whose
        # running sum exceeds u wins, the last one if rounding leaves u above them all.
        # Bisecting the running sums finds the same one, unless a NaN breaks their order.
        total, cumulative, self.drawable = 0.0, [], []
        for action, p in probs.items():
            if not p <= 0.0:
                total += p
                cumulative.append(total)
                self.drawable.append(action)
        self.cumulative = cumulative if cumulative and not math.isnan(total) else None
        self.fragments: dict[str, bytes] = {}

    def fragment(self, action: str) -> bytes:
        """The event's JSON from ``"action"`` up to ``"scores":`` when ``action`` is drawn."""
        body = encode_json({"action": action, "propensity": self.probs[action], "action_probs": self.probs})
        frag = self.fragments[action] = body[1:-1] + b',"scores":'
        return frag


class ServingPlan:
    """What the decisions of one blueprint under one policy version and spec share."""

    def __init__(
        self,
        blueprint: Blueprint,
        version: str | None,
        spec: ExplorationSpec,
        tag: int,
    ) -> None:
        self.blueprint = blueprint
        self.version = version
        self.spec = spec
        self.tag = tag
        self._actions = blueprint.decision.actions
        self._softmax = spec.type == "softmax"
        self._served: dict[str, _Distribution] = {}
        self._default: _Distribution | None = None
        head = (
            b'{"kind":"decision","event_id":"%b","decision_id":"%b","blueprint":'
            + _literal(blueprint.name)
            + b',"blueprint_version":'
            + _literal(blueprint.version)
            + b',"unit_id":%b,"ts":%d,"features":%b,%b%b,"policy_version":'
        )
        self._served_event = head + _literal(version) + b',"is_default":false}'
        self._default_events = {
            reason: head + b'null,"is_default":true,"default_reason":' + _literal(reason) + b"}"
            for reason in events.DEFAULT_REASONS
        }
        self._action_set = frozenset(self._actions)

    def _distribution(self, greedy: str, scores: dict[str, float] | None) -> _Distribution:
        """The served distribution; epsilon-greedy's depends on the greedy action alone."""
        dist = _Distribution(action_distribution(self.spec, self._actions, greedy, scores))
        if not self._softmax:  # softmax depends on every score: rarely shared, never cached
            self._served[greedy] = dist
        return dist

    def _default_distribution(self) -> _Distribution:
        if self._default is None:
            bp = self.blueprint
            spec = bp.policy.exploration
            if self.version is None and spec.cold_start is not None:  # no policy yet: explore the cold start
                spec = ExplorationSpec(type="epsilon_greedy", epsilon=spec.cold_start)
            probs = action_distribution(spec, self._actions, bp.decision.default_action)
            self._default = _Distribution(probs)
        return self._default

    def decide(
        self,
        requests: Sequence[tuple[str, Mapping[str, object]]],
        stamps: Sequence[int],
        entries: Sequence[bytes | str | None],
        rands: Sequence[int] | None = None,
        missing: str = events.UNKNOWN_UNIT,
        defaults: dict[str, int] | None = None,
        decision_ids: Sequence[str] | None = None,
    ) -> tuple[list[Decision], list[bytes]]:
        """Decisions and their events for prefetched entries.

        A None entry is served the default with reason ``missing`` (the caller knows why:
        no such unit, no policy, Redis failed), a str entry with that reason (the
        holdback's units); a corrupt entry (see :func:`decode_entry`,
        or an action the blueprint does not have) is served the default with reason
        ``corrupt_entry``. ``defaults``, when given, counts default decisions by reason.
        ``decision_ids``: ``ids.new_decision_ids(self.tag, stamps, rands)``, when made already.
        """
        bp_name, version = self.blueprint.name, self.version
        if decision_ids is None:
            decision_ids = ids.new_decision_ids(self.tag, stamps, rands)
        escape = json.encoder.encode_basestring_ascii
        served_event, default_events = self._served_event, self._default_events
        distribution, served_dists, actions = self._distribution, self._served, self._action_set
        decode, decode_error = _decode_entry, msgspec.DecodeError
        fast, slow, encode_errors = _fast_encode, _json_encode, _ENCODE_ERRORS
        hasher, from_bytes, two_64 = _blake2b_8.copy, _from_bytes, _TWO_64
        new_decision = Decision
        default_dist = self._default_distribution()
        decisions, payloads = [], []
        append_decision, append_payload = decisions.append, payloads.append
        # The body inlines decode_entry, encode_json and the uniform draw, with the
        # same results: a Python call per decision is a measurable share of its cost.
        for (unit_id, features), ts_ms, raw, decision_id in zip(requests, stamps, entries, decision_ids, strict=True):
            reason = missing
            if raw.__class__ is str:  # the caller's reason for this unit (holdback)
                reason = raw
            elif raw is not None:
                try:
                    doc = decode(raw)
                    greedy, scores = doc.a, doc.s
                    dist = served_dists.get(greedy)
                    if dist is None:
                        dist = distribution(greedy, scores) if greedy in actions else None
                except (decode_error, ArithmeticError):  # ArithmeticError: softmax of extreme scores
                    dist = None
                if dist is not None:
                    try:  # encode_json(scores)
                        scores_json = fast(scores)
                    except encode_errors:
                        scores_json = b"null"
                    if b"null" in scores_json:
                        scores_json = slow(scores).encode()
                    template, served_version, is_default, reason = served_event, version, False, None
                else:
                    reason = events.CORRUPT_ENTRY
            if reason is not None:
                dist, scores, scores_json, template = default_dist, None, b"null", default_events[reason]
                served_version, is_default = None, True
                if defaults is not None:
                    defaults[reason] = defaults.get(reason, 0) + 1
            try:  # encode_json(features)
                features_json = fast(features)
            except encode_errors:
                features_json = b"null"
            if b"null" in features_json:
                features_json = slow(features).encode()
            id_bytes = decision_id.encode()
            h = hasher()  # exploration.uniform_from_id
            h.update(id_bytes)
            u = from_bytes(h.digest(), "big") / two_64
            cumulative = dist.cumulative
            if cumulative is not None:
                i = bisect_right(cumulative, u)
                drawable = dist.drawable
                action = drawable[i] if i < len(drawable) else drawable[-1]
            else:  # NaN or no action to draw: the reference walk
                action = draw_action(decision_id, dist.probs)
            probs = dist.probs
            fragment = dist.fragments.get(action) or dist.fragment(action)
            unit = unit_id if unit_id.__class__ is str else str(unit_id)
            d = new_decision(decision_id, bp_name, unit, action, probs[action], probs.copy(), scores,
                             served_version, is_default, ts_ms, reason)
            append_decision(d)
            append_payload(
                template % (id_bytes, id_bytes, escape(unit).encode(), ts_ms, features_json, fragment, scores_json)
            )
        return decisions, payloads
