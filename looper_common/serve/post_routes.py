"""The three POST endpoints straight from ASGI, with FastAPI's body handling and error shapes.

FastAPI spends most of its per-request time outside the endpoint: routing, its
middleware stack, solving the endpoint's dependencies. For ``POST /v1/decisions``,
``/v1/decisions:batch`` and ``/v1/observations`` this layer (inside the token check)
reads the body and validates it as FastAPI does, step for step: JSON only for a JSON
content type (``json.loads`` as Starlette's ``Request.json``), the request model
validated from Python objects with its errors under ``["body", ...]``, a missing body
``Field required``, bad JSON ``json_invalid`` at its offset, undecodable text 400. The
app's FastAPI routes stay the API's definition (the OpenAPI document, every other
method and path); tests/integration/serve/test_post_routes.py holds both to the same
answers.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from looper_common.serve.auth import SCOPE_KEY
from looper_common.serve.schemas import DecisionBatchRequest, DecisionRequest, ObservationRequest
from looper_common.serve.service import BadRequest, DecisionService, Forbidden

_encode = msgspec.json.Encoder().encode  # Decision is a msgspec Struct: encoded as an object of its fields
_JSON = b"application/json"
_PARSE_ERROR = json.dumps({"detail": "There was an error parsing the body"}, separators=(",", ":")).encode()
Handler = Callable[[Any, "frozenset[str] | None"], Awaitable[tuple[int, bytes]]]


def ascii_json(body: object) -> bytes:
    """An error body as ASCII JSON: it may quote input that UTF-8 cannot carry (a lone surrogate)."""
    return json.dumps(body, default=str).encode()


def validation_errors(errors: list[dict[str, Any]]) -> bytes:
    """The 422 body: ``{"detail": [{"loc", "msg", "type"}]}`` (the input is not echoed back)."""
    return ascii_json({"detail": [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]})


def bad_request_body(err: BadRequest) -> bytes:
    return ascii_json({"detail": [{"loc": ["body", *err.field], "msg": str(err), "type": "value_error"}]})


def _is_json(content_type: str) -> bool:
    """FastAPI's test: ``application/json`` or ``application/*+json``, parameters allowed."""
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class PostRoutes:
    """Serve the POST endpoints of ``service``; pass everything else to ``app`` (FastAPI)."""

    def __init__(self, app: ASGIApp, service: DecisionService) -> None:
        self.app = app
        self.service = service
        self.routes: dict[str, tuple[TypeAdapter[BaseModel], Handler]] = {
            "/v1/decisions": (TypeAdapter(DecisionRequest), self._decide),
            "/v1/decisions:batch": (TypeAdapter(DecisionBatchRequest), self._decide_batch),
            "/v1/observations": (TypeAdapter(ObservationRequest), self._observe),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        status, body = await self._answer(route, scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", _JSON)]})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, route: tuple[TypeAdapter[BaseModel], Handler], scope: Scope,
                      receive: Receive) -> tuple[int, bytes]:
        adapter, handler = route
        try:
            raw = await _read_body(receive)
            value: Any = None
            if raw:
                content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
                is_json = content_type is not None and (
                    content_type == _JSON or _is_json(content_type.decode("latin-1")))
                value = json.loads(raw) if is_json else raw
        except json.JSONDecodeError as err:
            return 422, validation_errors([{"loc": ("body", err.pos), "msg": "JSON decode error",
                                            "type": "json_invalid"}])
        except Exception:  # noqa: BLE001 - as FastAPI: any other failure to read the body is a 400
            return 400, _PARSE_ERROR
        if value is None:
            return 422, validation_errors([{"loc": ("body",), "msg": "Field required", "type": "missing"}])
        try:
            body = adapter.validate_python(value, from_attributes=True)
        except ValidationError as err:
            errors = err.errors(include_url=False)
            return 422, validation_errors([{**e, "loc": ("body", *e["loc"])} for e in errors])
        try:
            return await handler(body, scope["state"][SCOPE_KEY])
        except BadRequest as err:
            return 422, bad_request_body(err)
        except Forbidden as err:
            return 403, ascii_json({"detail": str(err)})

    async def _decide(self, body: DecisionRequest, scope: frozenset[str] | None) -> tuple[int, bytes]:
        return 200, _encode(await self.service.decide(body, scope))

    async def _decide_batch(self, body: DecisionBatchRequest, scope: frozenset[str] | None) -> tuple[int, bytes]:
        return 200, _encode({"decisions": await self.service.decide_batch(body, scope)})

    async def _observe(self, body: ObservationRequest, scope: frozenset[str] | None) -> tuple[int, bytes]:
        return 202, _encode({"accepted": await self.service.observe(body, scope)})


class _Disconnected(Exception):
    """The client went away before its body was read."""


async def _read_body(receive: Receive) -> bytes:
    """The whole request body, as Starlette's ``Request.body`` reads it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
