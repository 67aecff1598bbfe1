"""``looper serve``: its arguments and run; the app is :func:`looper_common.serve.app.create_app`."""

from __future__ import annotations

import argparse
import os
import signal
import sys

DESCRIPTION = """\
Serve decisions and observations over HTTP/JSON, for product code in any language.

Endpoints (see docs/http.md; the OpenAPI document is at /openapi.json):
  POST /v1/decisions        one decision (the SDK's get_decision)
  POST /v1/decisions:batch  up to 1,000 decisions of one blueprint (get_decisions)
  POST /v1/observations     what happened after a decision (log_observations)
  GET  /healthz             the process is up
  GET  /readyz              Redis answers (503 when it does not)

Every /v1 request needs "Authorization: Bearer <token>", with the tokens taken from
$LOOPER_API_TOKENS: comma-separated, each "token" (every blueprint) or
"token:blueprint" (that blueprint only; list a token several times for several).
A request without a known token gets 401 before anything else is done. The server
refuses to start when $LOOPER_API_TOKENS is empty.

Decisions are taken by the Python SDK in this process: the same checks, events,
exploration and default on Redis failure. Logs are JSON lines on stderr: a summary per
second of traffic (counts by path and status, duration percentiles), one line per
request with --log-level debug. On SIGTERM or Ctrl-C it stops accepting, finishes the requests in flight,
sends the events kept while Redis was away, and exits 1 if any could not be sent.

example:
  LOOPER_API_TOKENS=s3cret looper serve --port 8780
  curl -s -H 'Authorization: Bearer s3cret' -H 'Content-Type: application/json' \\
      -d '{"blueprint": "notification_send", "unit_id": "u1", "features": {...}}' \\
      http://127.0.0.1:8780/v1/decisions
  (the blueprint's features with their types: docs/http.md, or /openapi.json)
"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_port, default=8780, help="TCP port (default 8780; 0 picks a free one)")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml) for Redis and the blueprints folder; "
                             "default $LOOPER_ENV or local")
    parser.add_argument("--blueprints", default=None,
                        help="folder of blueprint YAML files (default: the settings' blueprints_dir)")
    parser.add_argument("--graceful-timeout", type=int, default=10,
                        help="seconds to let requests in flight finish on shutdown (default 10)")
    parser.add_argument("--sdk-calls", choices=["async", "inline", "thread"], default="async",
                        help="how the SDK's Redis round trips are made: async (redis.asyncio; the decisions of one "
                             "blueprint asked at the same time share one MGET and one event write), inline "
                             "(blocking calls on the event loop, one request at a time) or thread (blocking calls in "
                             "a worker thread, one at a time: more CPU per request); default async")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log level: info logs a summary line per second of traffic, debug also one line per "
                             "request, warning only problems (default info)")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT; 2 on bad settings or tokens, 1 if events were left unsent."""
    import uvicorn

    from looper_common.contracts.blueprint import BlueprintError, load_blueprints
    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.sdk import LooperClient, LooperError
    from looper_common.serve.app import create_app
    from looper_common.serve.logs import configure_logging
    from looper_common.serve.tokens import ENV_VAR, TokenError, parse_tokens, unknown_scopes

    configure_logging(args.log_level)  # before the SDK client, which logs when Redis is away
    try:
        tokens = parse_tokens(os.environ.get(ENV_VAR))
        settings = load_settings(args.env)
        blueprints = load_blueprints(args.blueprints or settings.blueprints_dir)
        client = LooperClient(settings.redis.url, blueprints=blueprints, password=settings.redis.password,
                              cluster=settings.redis.cluster, limits=settings.ingest.limits)
    except (TokenError, ConfigError, BlueprintError, LooperError) as err:
        print(f"looper serve: error: {err}", file=sys.stderr)
        return 2
    typos = unknown_scopes(tokens, set(blueprints))
    if typos:
        print(f"looper serve: error: {ENV_VAR} scopes tokens to unknown blueprint(s) {typos}", file=sys.stderr)
        return 2
    app = create_app(client, blueprints, tokens, args.sdk_calls, tune_gc=True)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_config=None, access_log=False, server_header=False,
        timeout_graceful_shutdown=args.graceful_timeout, lifespan="on",
        proxy_headers=False,  # bound to one host, client addresses unused: no X-Forwarded-* rewriting per request
    )
    # uvicorn handles SIGTERM/SIGINT itself (a graceful stop), then re-raises the signal
    # to the handler it found: this one, so the exit code says whether events were lost.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if app.state.unsent_at_stop else 0
