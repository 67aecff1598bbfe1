"""The ASGI app of ``looper serve``: routes, error shapes, the OpenAPI document, lifespan.

Middleware order, outermost first: the request log (so 401s are logged too), then the
bearer-token check, then the POST endpoints served without FastAPI's per-request
machinery (``post_routes``), then FastAPI (every other path and method). Error bodies
follow FastAPI's: 422 ``{"detail": [{"loc", "msg", "type"}]}`` naming the field (the
input is not echoed back), 401/403 ``{"detail": "..."}``. With ``tune_gc`` the startup
heap is frozen (``gc_pauses``); collection pauses are logged at shutdown either way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from looper_common import __version__
from looper_common.contracts.blueprint import Blueprint
from looper_common.sdk import LooperClient
from looper_common.serve.auth import SCOPE_KEY, BearerAuth
from looper_common.serve.gc_pauses import GcPauses, freeze_startup_heap
from looper_common.serve.logs import RequestLog, RequestStats
from looper_common.serve.openapi import build_document
from looper_common.serve.post_routes import PostRoutes, ascii_json, bad_request_body, validation_errors
from looper_common.serve.schemas import (
    DecisionBatchOut,
    DecisionBatchRequest,
    DecisionOut,
    DecisionRequest,
    Health,
    ObservationOut,
    ObservationRequest,
    Problem,
)
from looper_common.serve.service import BadRequest, DecisionService, Forbidden, SdkCalls
from looper_common.serve.tokens import TokenTable

log = logging.getLogger("looper.serve")
_encode = msgspec.json.Encoder().encode  # Decision is a msgspec Struct: encoded as an object of its fields
_AUTH_ERRORS = {
    400: {"model": Problem, "description": "the body is not JSON text (e.g. not UTF-8)"},
    401: {"model": Problem, "description": "no or an unknown bearer token"},
    403: {"model": Problem, "description": "the token is scoped to other blueprints"},
}


def _json(body: object, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def _error(body: bytes, status: int) -> Response:
    return Response(body, status_code=status, media_type="application/json")


def create_app(
    client: LooperClient, blueprints: Mapping[str, Blueprint], tokens: TokenTable, sdk_calls: SdkCalls = "async",
    *, tune_gc: bool = False, post_routes: bool = True,
) -> FastAPI:
    """The HTTP API over ``client`` for ``blueprints``, open to ``tokens`` (``sdk_calls``: see ``service``).

    ``post_routes=False`` leaves the POST endpoints to FastAPI (the reference the fast path is tested against).
    """
    service = DecisionService(client, blueprints, sdk_calls)
    pauses = GcPauses()
    requests = RequestStats()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        frozen = freeze_startup_heap() if tune_gc else 0
        pauses.install()
        log.info("serving", extra={"fields": {"blueprints": sorted(service.blueprints), "sdk_calls": sdk_calls,
                                              "gc_frozen_objects": frozen}})
        try:
            yield
        finally:
            pauses.uninstall()
            left = app.state.unsent_at_stop = await service.flush()
            fields: dict[str, object] = {"unsent_events": left, "dropped_events": client.dropped_events}
            requests.flush_window()
            fields.update(requests.summary())
            fields.update(pauses.summary())
            if sdk_calls == "async":
                fields["rounds"] = service.rounds()
            log.info("stopped", extra={"fields": fields})
            client.redis.close()

    app = FastAPI(
        title="Looper decision service",
        version=__version__,
        description="Decisions and observations over HTTP, the same as the Python SDK's.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.unsent_at_stop = 0

    def token_scope(request: Request) -> frozenset[str] | None:
        return request.scope["state"][SCOPE_KEY]

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, err: RequestValidationError) -> Response:
        return _error(validation_errors(err.errors()), 422)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest) -> Response:
        return _error(bad_request_body(err), 422)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, err: Forbidden) -> Response:
        return _error(ascii_json({"detail": str(err)}), 403)

    @app.post("/v1/decisions", response_model=DecisionOut, responses=_AUTH_ERRORS, tags=["decisions"])
    async def decide(body: DecisionRequest, request: Request) -> Response:
        """Decide for one unit and log the decision event (``get_decision``)."""
        return _json(await service.decide(body, token_scope(request)))

    @app.post("/v1/decisions:batch", response_model=DecisionBatchOut, responses=_AUTH_ERRORS, tags=["decisions"])
    async def decide_batch(body: DecisionBatchRequest, request: Request) -> Response:
        """Decide for up to 1,000 units of one blueprint (``get_decisions``)."""
        return _json({"decisions": await service.decide_batch(body, token_scope(request))})

    @app.post("/v1/observations", status_code=202, response_model=ObservationOut, responses=_AUTH_ERRORS,
              tags=["observations"])
    async def observe(body: ObservationRequest, request: Request) -> Response:
        """Report what happened after a decision (``log_observations``)."""
        return _json({"accepted": await service.observe(body, token_scope(request))}, status=202)

    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Response:
        """The process is up (no Redis call)."""
        return _json({"status": "ok", "dropped_events": client.dropped_events})

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["operations"])
    async def readyz() -> Response:
        """Redis answers: decisions can be served from published policies and events sent."""
        if await service.ready():
            return _json({"status": "ready", "dropped_events": client.dropped_events})
        return _json({"status": "redis unavailable", "dropped_events": client.dropped_events}, status=503)

    app.openapi = lambda: build_document(app, service.blueprints)  # type: ignore[method-assign]
    if post_routes:
        app.add_middleware(PostRoutes, service=service)
    app.add_middleware(BearerAuth, tokens=tokens)
    app.add_middleware(RequestLog, stats=requests)
    return app
