#!/usr/bin/env bash
# Start, stop or check the local redis-server that Looper uses in the embedded set-up.
# Port from LOOPER_REDIS_PORT (default 6390); data, pid and log under var/redis/.
# The server daemonizes, so it keeps running after this script (and make) exit.
# noeviction: at maxmemory Redis refuses new writes instead of evicting event streams or
# policy pointers (ingestion refuses a server whose policy is allkeys-*).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${LOOPER_REDIS_PORT:-6390}"
DIR="$ROOT/var/redis"

log() { echo "[redis] $*"; }
is_up() { [[ "$(redis-cli -p "$PORT" ping 2>/dev/null)" == PONG ]]; }

start() {
    if is_up; then
        log "already running on 127.0.0.1:$PORT"
        return 0
    fi
    mkdir -p "$DIR"
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" \
        --appendonly yes --save "" --maxmemory-policy noeviction --daemonize yes \
        --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
    for _ in $(seq 1 50); do
        if is_up; then
            log "started on 127.0.0.1:$PORT (data in var/redis)"
            return 0
        fi
        sleep 0.2
    done
    echo "[redis] redis-server did not answer on port $PORT within 10 s; end of $DIR/redis.log:" >&2
    tail -n 20 "$DIR/redis.log" >&2 2>/dev/null || true
    exit 1
}

stop() {
    if is_up; then
        redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
        log "stopped (port $PORT)"
    else
        log "not running on port $PORT"
    fi
}

status() {
    if is_up; then
        log "running on 127.0.0.1:$PORT"
    else
        log "not running on port $PORT"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *)
        echo "usage: $0 {start|stop|status}" >&2
        exit 2
        ;;
esac
