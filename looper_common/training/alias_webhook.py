"""Reviewer alias moves with the time they were made: a receiver for MLflow's registry webhooks.

MLflow (3.3+) sends ``model_version_alias.created`` and ``model_version_alias.deleted``
events from its tracking server's REST handlers: the MLflow UI (``make mlflow``) and any
client whose tracking URI is that server. Each POST is signed (``X-MLflow-Signature:
v1,<base64 HMAC-SHA256>`` over ``<delivery id>.<timestamp>.<body>`` with the webhook's
secret) and its JSON carries the ``timestamp`` of the event. A client writing to the
sqlite store directly (Looper's jobs, ``looper promote``) goes through no handler and
fires no webhook: those moves are recorded by Looper when it makes them
(``registry.move_alias``). A move the receiver missed (it was down) is still found by
``registry.detect_reviewer_moves`` on the next evaluate_models, with the time found.

The receiver appends each move of a Looper model (``looper.<blueprint>.<label>``) to
``gold/alias_history`` with the event's time, unless the history already shows the
alias at that version (a delivery retried, or a move Looper recorded itself).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from looper_common.lake.engine import Lake
from looper_common.training.registry import record_alias_move, recorded_alias

log = logging.getLogger(__name__)
EVENTS = ("model_version_alias.created", "model_version_alias.deleted")
SECRET_ENV = "LOOPER_MLFLOW_WEBHOOK_SECRET"
MAX_SKEW_S = 300  # a signed delivery older (or newer) than this is refused: no replays
MAX_BODY_BYTES = 65536
ACTOR = "reviewer (MLflow webhook)"
REASON = "alias moved in MLflow (the UI or its REST API); ts is the event's time, from MLflow's webhook"


class WebhookRejected(ValueError):
    """A delivery that is not a valid, signed, recent MLflow alias event; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class AliasMove:
    model: str
    alias: str
    version: str | None  # None: the alias was deleted
    ts: datetime


def verify(secret: str, headers, body: bytes, now: float | None = None) -> None:
    """Raise :class:`WebhookRejected` (401) unless ``body`` carries MLflow's signature with ``secret``, recently."""
    delivery, stamp, signature = (headers.get(h) for h in
                                  ("X-MLflow-Delivery-Id", "X-MLflow-Timestamp", "X-MLflow-Signature"))
    if not (delivery and stamp and signature):
        raise WebhookRejected(401, "unsigned delivery (X-MLflow-Signature, -Timestamp, -Delivery-Id required)")
    try:
        age = abs((time.time() if now is None else now) - int(stamp))
    except ValueError:
        raise WebhookRejected(401, f"X-MLflow-Timestamp is not a Unix time: {stamp!r}") from None
    if age > MAX_SKEW_S:
        raise WebhookRejected(401, f"delivery timestamp is {age:.0f} s away from now (> {MAX_SKEW_S} s)")
    signed = f"{delivery}.{stamp}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(secret.encode(), signed, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        raise WebhookRejected(401, "bad signature")


def alias_move(document: dict) -> AliasMove | None:
    """The alias move an event describes; None for another event; :class:`WebhookRejected` (400) if malformed."""
    event = f"{document.get('entity')}.{document.get('action')}"
    if event not in EVENTS:
        return None
    data = document.get("data")
    try:
        ts = datetime.fromisoformat(document["timestamp"])
        model, alias = data["name"], data["alias"]
    except (KeyError, TypeError, ValueError) as err:
        raise WebhookRejected(400, f"{event}: missing or bad field {err}") from None
    if ts.tzinfo is None:
        raise WebhookRejected(400, f"{event}: timestamp {document['timestamp']!r} has no time zone")
    version = str(data["version"]) if event.endswith("created") and data.get("version") is not None else None
    return AliasMove(model, alias, version, ts)


def looper_blueprint(model: str) -> str | None:
    """The blueprint of a Looper model name ``looper.<blueprint>.<label>``, else None."""
    parts = model.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "looper" and all(parts) else None


def record_webhook_move(lake: Lake, move: AliasMove) -> bool:
    """Append ``move`` to ``gold/alias_history`` at its time; False when not Looper's or already recorded."""
    blueprint = looper_blueprint(move.model)
    if blueprint is None:
        return False
    previous = recorded_alias(lake, move.model, move.alias)
    if previous == move.version:
        return False
    record_alias_move(lake, name=move.model, alias=move.alias, version=move.version, previous=previous,
                      actor=ACTOR, reason=REASON, metrics=None, blueprint=blueprint, blueprint_version=None,
                      run_date=None, ts=move.ts)
    log.info("%s: %s %s -> %s at %s (MLflow webhook)", move.model, move.alias, previous, move.version,
             move.ts.isoformat())
    return True


def receiver(lake: Lake, secret: str, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server (not started: call ``serve_forever``) recording the alias events POSTed to it."""
    lock = threading.Lock()  # one history append at a time: the "already recorded" check stays true

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    raise WebhookRejected(413, f"body of {length} bytes (> {MAX_BODY_BYTES})")
                body = self.rfile.read(length)
                verify(secret, self.headers, body)
                try:
                    document = json.loads(body)
                except ValueError:
                    raise WebhookRejected(400, "body is not JSON") from None
                move = alias_move(document) if isinstance(document, dict) else None
                if move is not None:
                    with lock:
                        record_webhook_move(lake, move)
                self._answer(200, {"recorded": move is not None})
            except WebhookRejected as err:
                log.warning("webhook delivery refused (%d): %s", err.status, err)
                self._answer(err.status, {"error": str(err)})

        def _answer(self, status: int, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
            log.debug(format, *args)

    return ThreadingHTTPServer((host, port), Handler)


def register(client, url: str, secret: str, name: str = "looper-alias-history") -> str:
    """Create (or point at ``url``) the registry webhook sending alias events; returns its id."""
    for hook in client.list_webhooks():
        if hook.name == name:
            client.update_webhook(hook.webhook_id, url=url, events=list(EVENTS), secret=secret)
            return hook.webhook_id
    return client.create_webhook(name=name, url=url, events=list(EVENTS), secret=secret).webhook_id
