"""The observation side of :class:`~looper_common.sdk.client.LooperClient`: checked events, then sent.

An observation names only its decision id; the id's blueprint tag (``ids.tag_of``)
tells which blueprint's stream it belongs to, unless ``blueprint=`` is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from looper_common.contracts import events, ids
from looper_common.sdk.decision_steps import Timestamp
from looper_common.sdk.requests import Compiled, LooperError, check_decision_id, observation_payloads, shown


class ObservationSteps:
    """``log_observations`` and its batch form; :class:`LooperClient` holds the state they use."""

    _by_tag: dict[int, str]

    def _compiled(self, blueprint: str) -> Compiled:
        raise NotImplementedError

    def _send(self, stream: str, payloads: list[bytes]) -> None:
        raise NotImplementedError

    def log_observations(
        self,
        decision_id: str,
        observations: Mapping[str, float | int | bool],
        *,
        ts: Timestamp = None,
        blueprint: str | None = None,
    ) -> None:
        """Report what happened after a decision, minutes or days later."""
        self.log_observations_batch([(decision_id, observations, ts)], blueprint=blueprint)

    def log_observations_batch(
        self,
        items: Iterable[tuple[str, Mapping[str, float | int | bool], Timestamp]],
        *,
        blueprint: str | None = None,
    ) -> None:
        """Batch form of :meth:`log_observations`: one script call per stream and 1,000 XADDs."""
        for stream, payloads in self.observation_events(items, blueprint=blueprint).items():
            self._send(stream, payloads)

    def observation_events(
        self,
        items: Iterable[tuple[str, Mapping[str, float | int | bool], Timestamp]],
        *,
        blueprint: str | None = None,
    ) -> dict[str, list[bytes]]:
        """The observation events of ``items`` by stream, checked (a ``LooperError`` names the field); no I/O."""
        by_stream: dict[str, list[bytes]] = {}
        for decision_id, observations, ts in items:  # all checked before anything is sent
            check_decision_id(decision_id)
            compiled = self._compiled(blueprint or self._blueprint_of(decision_id))
            ts_ms = events.to_epoch_ms(ts, compiled.limits)
            payloads = observation_payloads(compiled, decision_id, observations, ts_ms)
            by_stream.setdefault(compiled.stream, []).extend(payloads)
        return by_stream

    def _blueprint_of(self, decision_id: str) -> str:
        try:
            return self._by_tag[ids.tag_of(decision_id)]
        except (KeyError, ValueError):
            raise LooperError(
                f"decision id {shown(decision_id)} was not issued for any blueprint this client knows; "
                "pass blueprint= explicitly"
            ) from None
