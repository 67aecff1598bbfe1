#!/usr/bin/env bash
# Start, stop or check a local Redis Cluster: LOOPER_RCLUSTER_MASTERS masters (default 3),
# each with LOOPER_RCLUSTER_REPLICAS replicas (default 1), on consecutive ports from
# LOOPER_RCLUSTER_PORT (default 7101), bound to 127.0.0.1. Data, pids, logs and
# nodes.conf under LOOPER_RCLUSTER_DIR (default var/redis-cluster/). The servers
# daemonize; `stop` shuts them down and removes the cluster state so the next `start`
# creates a fresh cluster. Settings as scripts/redis.sh (noeviction, appendonly).
# With LOOPER_REDIS_PASSWORD set, every node requires it (requirepass and masterauth):
# each node's settings are written to <dir>/<port>/redis.conf (mode 600) and redis-cli gets
# it as REDISCLI_AUTH, so it is never printed and never on a command line that `ps` shows.
# Clients reach it with redis.url = redis://127.0.0.1:<first port>/0 and redis.cluster = true.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIRST="${LOOPER_RCLUSTER_PORT:-7101}"
MASTERS="${LOOPER_RCLUSTER_MASTERS:-3}"
REPLICAS="${LOOPER_RCLUSTER_REPLICAS:-1}"
DIR="${LOOPER_RCLUSTER_DIR:-$ROOT/var/redis-cluster}"
if [[ -n "${LOOPER_REDIS_PASSWORD:-}" ]]; then export REDISCLI_AUTH="$LOOPER_REDIS_PASSWORD"; fi
COUNT=$((MASTERS * (REPLICAS + 1)))
PORTS=()
for ((i = 0; i < COUNT; i++)); do PORTS+=($((FIRST + i))); done

log() { echo "[redis-cluster] $*"; }
up() { [[ "$(redis-cli -p "$1" ping 2>/dev/null)" == PONG ]]; }
cluster_ok() { redis-cli -p "$FIRST" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

# One node's settings; the password (printf is a shell builtin: no process shows it) only here.
write_conf() {
    local port="$1" conf="$DIR/$1/redis.conf"
    (umask 077; : >"$conf")
    chmod 600 "$conf"
    {
        printf 'port %s\nbind 127.0.0.1\ndir "%s"\n' "$port" "$DIR/$port"
        printf 'cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout %s\n' \
            "${LOOPER_RCLUSTER_NODE_TIMEOUT_MS:-2000}"
        printf 'appendonly yes\nsave ""\nmaxmemory-policy noeviction\ndaemonize yes\n'
        printf 'pidfile "%s"\nlogfile "%s"\n' "$DIR/$port/redis.pid" "$DIR/$port/redis.log"
        if [[ -n "${LOOPER_REDIS_PASSWORD:-}" ]]; then
            local quoted
            quoted="$(printf '%s' "$LOOPER_REDIS_PASSWORD" | sed 's/[\\"]/\\&/g')"
            printf 'requirepass "%s"\nmasterauth "%s"\n' "$quoted" "$quoted"
        fi
    } >>"$conf"
}

start() {
    if up "$FIRST" && cluster_ok; then
        log "already running on 127.0.0.1:${PORTS[0]}-${PORTS[-1]}"
        return 0
    fi
    for port in "${PORTS[@]}"; do
        mkdir -p "$DIR/$port"
        if ! up "$port"; then
            write_conf "$port"
            redis-server "$DIR/$port/redis.conf"
        fi
    done
    for port in "${PORTS[@]}"; do
        for _ in $(seq 1 50); do up "$port" && break; sleep 0.2; done
        if ! up "$port"; then
            echo "[redis-cluster] redis-server did not answer on port $port; end of its log:" >&2
            tail -n 20 "$DIR/$port/redis.log" >&2 2>/dev/null || true
            exit 1
        fi
    done
    if ! redis-cli -p "$FIRST" cluster info | grep -q '^cluster_known_nodes:'"$COUNT"; then
        local nodes=()
        for port in "${PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas "$REPLICAS" --cluster-yes >"$DIR/create.log"
    fi
    for _ in $(seq 1 150); do
        if cluster_ok; then
            log "started on 127.0.0.1:${PORTS[0]}-${PORTS[-1]} ($MASTERS masters, $REPLICAS replica(s) each; data in $DIR)"
            return 0
        fi
        sleep 0.2
    done
    echo "[redis-cluster] cluster_state did not become ok within 30 s" >&2
    redis-cli -p "$FIRST" cluster info >&2 || true
    exit 1
}

stop() {
    for port in "${PORTS[@]}"; do
        if up "$port"; then
            redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
        fi
        rm -f "$DIR/$port/nodes.conf" "$DIR/$port"/appendonly.aof* 2>/dev/null || true
        rm -rf "$DIR/$port/appendonlydir" 2>/dev/null || true
    done
    log "stopped (ports ${PORTS[0]}-${PORTS[-1]})"
}

status() {
    if up "$FIRST" && cluster_ok; then
        log "running on 127.0.0.1:${PORTS[0]}-${PORTS[-1]}, cluster_state:ok"
    else
        log "not running (or cluster_state not ok) on ports ${PORTS[0]}-${PORTS[-1]}"
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
