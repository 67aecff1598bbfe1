"""Bearer-token check as ASGI middleware: runs before routing, body parsing or Redis.

A request to anything but the open paths (health, readiness, the OpenAPI document)
without ``Authorization: Bearer <known token>`` gets 401 and nothing else happens.
A known token's scope (``None``: every blueprint) is left in ``scope["state"]`` for
the endpoints, which answer 403 for a blueprint outside it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from looper_common.serve.tokens import TokenTable

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})
SCOPE_KEY = "looper_token_scope"
_BODY_401 = b'{"detail":"missing or invalid bearer token"}'


class BearerAuth:
    """Reject requests without a known bearer token before the app sees them."""

    def __init__(self, app: ASGIApp, tokens: TokenTable) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no WebSocket endpoint exists: close before the app sees it
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        allowed = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                allowed = self._scope_of(value)
                break
        if allowed is False:
            await _unauthorized(send)
            return
        scope.setdefault("state", {})[SCOPE_KEY] = allowed
        await self.app(scope, receive, send)

    def _scope_of(self, header: bytes) -> frozenset[str] | None | bool:
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return False
        return self.tokens.scope_of(token.strip())


async def _unauthorized(send: Send) -> None:
    await send({
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY_401)).encode()),
            (b"www-authenticate", b'Bearer realm="looper"'),
        ],
    })
    await send({"type": "http.response.body", "body": _BODY_401})
