#!/usr/bin/env bash
# `make mlflow`: the MLflow UI on the local store, bound to 127.0.0.1:MLFLOW_PORT (default 5000).
# With LOOPER_MLFLOW_WEBHOOK_SECRET set, it also runs `looper alias-webhook --register` on
# 127.0.0.1:LOOPER_ALIAS_WEBHOOK_PORT (default 5055; its log var/mlflow/alias-webhook.log): the MLflow webhook named
# looper-alias-history is created (or updated) in the store with that secret, and every
# alias move made in the UI is appended to gold/alias_history at the time it was made.
# The secret stays in the environment (never on a command line or printed). The store is
# the settings' (LOOPER_MLFLOW_TRACKING_URI / LOOPER_MLFLOW_ARTIFACT_ROOT, default var/mlflow/).
# Ctrl-C stops both (the UI in the foreground; the receiver when the script exits).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOOPER_VENV:-$ROOT/.venv}"
PORT="${MLFLOW_PORT:-5000}"
HOOK_PORT="${LOOPER_ALIAS_WEBHOOK_PORT:-5055}"
HOOK_LOG="${LOOPER_ALIAS_WEBHOOK_LOG:-$ROOT/var/mlflow/alias-webhook.log}"
KEY_FILE="${LOOPER_MLFLOW_WEBHOOK_KEY_FILE:-$ROOT/var/mlflow/webhook-encryption.key}"
STORE="${LOOPER_MLFLOW_TRACKING_URI:-sqlite:///$ROOT/var/mlflow/mlflow.db}"
ARTIFACTS="${LOOPER_MLFLOW_ARTIFACT_ROOT:-$ROOT/var/mlflow/artifacts}"
export LOOPER_MLFLOW_TRACKING_URI="$STORE" LOOPER_MLFLOW_ARTIFACT_ROOT="$ARTIFACTS"
# MLflow may POST its webhooks to a local, plain-HTTP receiver
export MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true

# MLflow stores each webhook's secret encrypted with MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY, and
# makes a random key per process without it: the receiver's registration and the UI's deliveries
# must share one. It is made once and kept in a mode-600 file (losing it makes the stored
# webhook unreadable: delete the store's webhook row, then register again).
if [[ -n "${LOOPER_MLFLOW_WEBHOOK_SECRET:-}" && -z "${MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY:-}" ]]; then
    if [[ ! -s "$KEY_FILE" ]]; then
        mkdir -p "$(dirname "$KEY_FILE")"
        (umask 077; "$VENV/bin/python" -c \
            'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' >"$KEY_FILE")
    fi
    MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$(<"$KEY_FILE")"
    export MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY
fi

HOOK=""
trap '[[ -z "$HOOK" ]] || kill "$HOOK" 2>/dev/null || true' EXIT
if [[ -n "${LOOPER_MLFLOW_WEBHOOK_SECRET:-}" ]]; then
    mkdir -p "$(dirname "$HOOK_LOG")"
    "$VENV/bin/looper" alias-webhook --port "$HOOK_PORT" --register >"$HOOK_LOG" 2>&1 &
    HOOK=$!
    until grep -q "listening on" "$HOOK_LOG"; do  # printed once the webhook is registered
        if ! kill -0 "$HOOK" 2>/dev/null; then
            echo "[mlflow] looper alias-webhook exited:" >&2
            cat "$HOOK_LOG" >&2
            exit 1
        fi
        sleep 0.2
    done
    cat "$HOOK_LOG"
    echo "[mlflow] the receiver's log: $HOOK_LOG"
else
    echo "[mlflow] LOOPER_MLFLOW_WEBHOOK_SECRET is not set: alias moves made in the UI are recorded by the next" \
        "evaluate_models, at the time found (set it to record them when made)"
fi
echo "MLflow UI: http://127.0.0.1:$PORT  (experiments looper/<blueprint>, Models: looper.<blueprint>.<label>)"
# in the foreground: Ctrl-C reaches it and its workers; the receiver is stopped on exit
"$VENV/bin/mlflow" ui --backend-store-uri "$STORE" --default-artifact-root "$ARTIFACTS" \
    --host 127.0.0.1 --port "$PORT"
