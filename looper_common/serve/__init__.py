"""``looper serve``: the SDK's decisions and observations over HTTP/JSON (DESIGN.md §7).

``tokens`` parses ``LOOPER_API_TOKENS``; ``auth`` checks the bearer token before
anything else runs; ``schemas`` are the request and response bodies (the OpenAPI
document); ``service`` calls the SDK; ``app`` wires the routes; ``logs`` writes JSON
lines; ``command`` is the CLI entry. ``create_app`` is imported on first use, so
``looper --help`` does not load FastAPI.
"""

from __future__ import annotations

from typing import Any

from looper_common.serve.tokens import TokenError, TokenTable, parse_tokens

__all__ = ["TokenError", "TokenTable", "create_app", "parse_tokens"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from looper_common.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
