"""``looper alias-webhook``: record reviewer alias moves at the time MLflow made them (training/alias_webhook.py)."""

from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = """\
Receive MLflow's registry webhooks and append every alias move of a Looper model to
gold/alias_history with the time of the event (a move made in the MLflow UI, or through
the MLflow server's REST API, by a reviewer).

The receiver binds 127.0.0.1. Deliveries must carry MLflow's HMAC signature with the
secret in $LOOPER_MLFLOW_WEBHOOK_SECRET (never printed); --register creates (or updates)
the registry webhook named looper-alias-history with that secret in the configured
MLflow store. MLflow delivers webhooks from its server only: run the UI with
MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https and MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true
(`make mlflow` sets both) so that it may POST to this local, plain-HTTP receiver,
and give both the same MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY (MLflow stores the
webhook's secret encrypted with it, and makes a random one per process without it).
`make mlflow` starts this receiver with --register itself when
LOOPER_MLFLOW_WEBHOOK_SECRET is set, with one key for both (scripts/mlflow.sh).
Moves made straight on the sqlite store (Looper's jobs, `looper promote`) fire no
webhook; Looper records those itself when it makes them.

example:
  export LOOPER_MLFLOW_WEBHOOK_SECRET=$(openssl rand -hex 16)
  looper alias-webhook --port 5055 --register
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=5055, help="port on 127.0.0.1 (default %(default)s)")
    parser.add_argument("--register", action="store_true",
                        help="create or update the MLflow webhook pointing at this receiver first")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 without a secret or with bad settings."""
    import mlflow

    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.jobrunner import open_lake
    from looper_common.training.alias_webhook import SECRET_ENV, receiver, register

    secret = os.environ.get(SECRET_ENV)
    if not secret:
        print(f"looper alias-webhook: error: set {SECRET_ENV} (the secret MLflow signs deliveries with)",
              file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.env)
    except ConfigError as err:
        print(f"looper alias-webhook: error: {err}", file=sys.stderr)
        return 2
    server = receiver(open_lake(settings, "looper-alias-webhook"), secret, port=args.port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    if args.register:
        os.environ.setdefault("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")  # a local, plain-HTTP receiver
        os.environ.setdefault("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
        hook = register(mlflow.MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri), url, secret)
        print(f"MLflow webhook {hook} -> {url}")
    print(f"recording alias moves into gold/alias_history; listening on {url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
