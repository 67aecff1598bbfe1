#!/usr/bin/env bash
# Airflow on the embedded stack: SQLite under var/airflow, DAGs from dags/, the Spark
# connection pointing at local[*]. Usage: scripts/airflow.sh {init|start|stop|status|run ARGS...}
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export LOOPER_HOME="$ROOT"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS:-True}"
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
export AIRFLOW_CONN_SPARK_DEFAULT="${AIRFLOW_CONN_SPARK_DEFAULT:-{\"conn_type\": \"spark\", \"host\": \"local[*]\"}}"
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

start() {
  init
  for service in api-server scheduler dag-processor; do
    local pidfile="$AIRFLOW_HOME/$service.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "[airflow] $service already running (pid $(cat "$pidfile"))"; continue
    fi
    nohup airflow "$service" >"$AIRFLOW_HOME/logs/$service.log" 2>&1 &
    echo $! >"$pidfile"
    echo "[airflow] started $service (log: $AIRFLOW_HOME/logs/$service.log)"
  done
  echo "[airflow] UI: http://127.0.0.1:${AIRFLOW__API__PORT}  (local stack: no login, every user is admin;"
  echo "          set AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False to require the generated"
  echo "          passwords in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
  echo "[airflow] stop with: make airflow-stop"
}

stop() {
  for service in api-server scheduler dag-processor; do
    local pidfile="$AIRFLOW_HOME/$service.pid"
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
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
