#!/usr/bin/env bash
# Start, stop or check the local redis-server that Looper uses in the embedded set-up.
# Port from LOOPER_REDIS_PORT (default 6390); data, pid and log under var/redis/.
# The server daemonizes, so it keeps running after this script (and make) exit.
# noeviction: at maxmemory Redis refuses new writes instead of evicting event streams or
# policy pointers (ingestion refuses a server whose policy is allkeys-*).
# LOOPER_REDIS_PASSWORD, when set, becomes the server's requirepass: it is written to
# var/redis/redis.conf (mode 600) and handed to redis-cli as REDISCLI_AUTH, so it is
# never printed and never on a command line that `ps` shows.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${LOOPER_REDIS_PORT:-6390}"
DIR="$ROOT/var/redis"
CONF="$DIR/redis.conf"
if [[ -n "${LOOPER_REDIS_PASSWORD:-}" ]]; then export REDISCLI_AUTH="$LOOPER_REDIS_PASSWORD"; fi

log() { echo "[redis] $*"; }
cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }
is_up() { [[ "$(cli ping 2>/dev/null)" == PONG ]]; }
answers() { cli ping 2>&1 | grep -q -e PONG -e NOAUTH -e WRONGPASS; }

# The server's settings; the password (printf is a shell builtin: no process shows it) only here.
write_conf() {
    (umask 077; : >"$CONF")
    chmod 600 "$CONF"
    {
        printf 'port %s\nbind 127.0.0.1\ndir "%s"\nappendonly yes\nsave ""\n' "$PORT" "$DIR"
        printf 'maxmemory-policy noeviction\ndaemonize yes\npidfile "%s"\nlogfile "%s"\n' \
            "$DIR/redis.pid" "$DIR/redis.log"
        if [[ -n "${LOOPER_REDIS_PASSWORD:-}" ]]; then
            printf 'requirepass "%s"\n' "$(printf '%s' "$LOOPER_REDIS_PASSWORD" | sed 's/[\\"]/\\&/g')"
        fi
    } >>"$CONF"
}

start() {
    if is_up; then
        log "already running on 127.0.0.1:$PORT"
        return 0
    fi
    if answers; then
        echo "[redis] a server on port $PORT refuses the password (LOOPER_REDIS_PASSWORD unset or wrong)" >&2
        exit 1
    fi
    mkdir -p "$DIR"
    write_conf
    redis-server "$CONF"
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
        cli shutdown nosave >/dev/null 2>&1 || true
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
