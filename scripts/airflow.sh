#!/usr/bin/env bash
# Airflow on the embedded stack: SQLite under var/airflow, DAGs from dags/, the Spark
# connection pointing at local[*]. Usage: scripts/airflow.sh {init|start|stop|status|run ARGS...}
#
# Every service binds 127.0.0.1: the api-server (no login, every user admin) on
# AIRFLOW_PORT (default 8080), and the tasks reach its execution API on that same port.
# The scheduler runs without its log server (Airflow binds that one to every interface,
# with no setting for the host); the api-server reads task logs from $AIRFLOW_HOME/logs,
# on this machine. AIRFLOW_LOG_PORT (default AIRFLOW_PORT + 1) is the port Airflow would
# use for it, so two stacks on one machine never share one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOOPER_VENV:-$ROOT/.venv}"
export LOOPER_HOME="$ROOT"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS:-True}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW__API__PORT}/execution/"
export AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="${AIRFLOW_LOG_PORT:-$((AIRFLOW__API__PORT + 1))}"
READY_TIMEOUT="${AIRFLOW_READY_TIMEOUT:-180}"   # seconds the scheduler waits for the api-server
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
# (the default in a variable of its own: a `}` inside ${VAR:-...} would be appended to a value that is set)
LOCAL_SPARK_CONN='{"conn_type": "spark", "host": "local[*]"}'
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-$LOCAL_SPARK_CONN}"
export PATH="$VENV/bin:$PATH"   # spark-submit comes with pyspark in the venv
export PYSPARK_PYTHON="$VENV/bin/python" PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
mkdir -p "$AIRFLOW_HOME/logs"

# The installed Airflow version, read from its package metadata: `airflow version` would
# start the whole CLI (seconds) before every `run`.
airflow_version() {
  python -c 'from importlib.metadata import version; print(version("apache-airflow"))'
}

init() {
  local stamp="$AIRFLOW_HOME/.migrated" installed
  installed="$(airflow_version)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$installed" ]; then
    echo "[airflow] migrating the metadata database (SQLite, $AIRFLOW_HOME)"
    airflow db migrate >"$AIRFLOW_HOME/logs/db-migrate.log" 2>&1 || { tail -20 "$AIRFLOW_HOME/logs/db-migrate.log"; exit 1; }
    echo "$installed" >"$stamp"
  fi
}

# Wait until the api-server answers its health check, so that no task starts against an
# execution API that is not listening yet (they would fail their first try).
wait_for_api() {
  local url="http://127.0.0.1:${AIRFLOW__API__PORT}/api/v2/monitor/health" pid
  pid="$(cat "$AIRFLOW_HOME/api-server.pid")"
  echo "[airflow] waiting for the api-server on $url (up to ${READY_TIMEOUT}s)"
  for _ in $(seq "$READY_TIMEOUT"); do
    if python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  echo "[airflow] the api-server is not ready; last lines of its log:" >&2
  tail -20 "$AIRFLOW_HOME/logs/api-server.log" >&2
  exit 1
}

start_service() {
  local service="$1"; shift
  local pidfile="$AIRFLOW_HOME/$service.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "[airflow] $service already running (pid $(cat "$pidfile"))"; return 0
  fi
  # its own process group (setsid): stop ends the service and the workers it forks together
  setsid nohup airflow "$service" "$@" >"$AIRFLOW_HOME/logs/$service.log" 2>&1 &
  echo $! >"$pidfile"
  echo "[airflow] started $service (log: $AIRFLOW_HOME/logs/$service.log)"
}

start() {
  init
  start_service api-server
  wait_for_api
  start_service scheduler --skip-serve-logs
  start_service dag-processor
  echo "[airflow] UI: http://127.0.0.1:${AIRFLOW__API__PORT}  (local stack: no login, every user is admin;"
  echo "          set AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False to require the generated"
  echo "          passwords in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
  echo "[airflow] stop with: make airflow-stop"
}

stop() {
  # SIGTERM to each service's process group; what is still alive 30 s later (a scheduler waiting on
  # its executor's workers) gets SIGKILL, so nothing of the stack outlives `stop`
  local pids=()
  for service in api-server scheduler dag-processor; do
    local pidfile="$AIRFLOW_HOME/$service.pid"
    if [ -f "$pidfile" ]; then
      local pid; pid="$(cat "$pidfile")"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid"); rm -f "$pidfile"
    fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[airflow] pid $pid did not stop within 30 s: killed" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    pkill -KILL -g "$pid" 2>/dev/null || true  # its workers, if they outlived it
    for _ in $(seq 40); do  # until the kernel has torn the group down (33 processes for a scheduler)
      pgrep -g "$pid" >/dev/null 2>&1 || break
      sleep 0.25
    done
  done
  echo "[airflow] stopped"
}

case "${1:-}" in
  init) init ;;
  start) start ;;
  stop) stop ;;
  status) for s in api-server scheduler dag-processor; do
            f="$AIRFLOW_HOME/$s.pid"; if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then echo "$s: running"; else echo "$s: stopped"; fi
          done ;;
  run) shift; init; exec airflow "$@" ;;
  *) echo "usage: $0 {init|start|stop|status|run AIRFLOW-ARGS...}" >&2; exit 2 ;;
esac
