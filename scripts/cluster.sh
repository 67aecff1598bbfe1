#!/usr/bin/env bash
# A cluster in a box: the services of conf/cluster-local.yaml as separate processes on this
# machine, every one bound to 127.0.0.1, state, pid files and logs under var/cluster/
# ($LOOPER_CLUSTER_DIR).
# Usage: scripts/cluster.sh {up|down|status|env}   (make cluster-up / make cluster-down)
#
#   Spark standalone   master spark://127.0.0.1:7077 (UI :7078), two workers (1 core, 1 GiB each, UI :7081, :7082)
#   object store       moto's S3 server on http://127.0.0.1:9100, bucket $LOOPER_S3_BUCKET (the lake, MLflow's artifacts)
#   PostgreSQL         127.0.0.1:5440, databases mlflow and airflow (user looper, password $LOOPER_PG_PASSWORD)
#   MLflow             tracking server http://127.0.0.1:5050 on PostgreSQL, artifacts proxied to the object store
#   Airflow            api-server (UI) http://127.0.0.1:8790, scheduler, dag-processor; LocalExecutor on PostgreSQL
#   Redis Cluster      3 masters + 1 replica each on 127.0.0.1:7101-7106 (scripts/redis-cluster.sh)
#
# `up` is idempotent (a running service is left alone); `down` stops every service whose pid
# file or port says it runs, also after a failed `up` or test. Credentials come from the
# environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, LOOPER_PG_PASSWORD); the in-box
# stack defaults them to local values. `env` prints the variables a shell needs to use it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LOOPER_VENV:-$ROOT/.venv}"
STATE="${LOOPER_CLUSTER_DIR:-$ROOT/var/cluster}"   # the test uses its own
HOST=127.0.0.1
SPARK_PORT=7077 SPARK_UI_PORT=7078
S3_PORT="${LOOPER_S3_PORT:-9100}"
PG_PORT="${LOOPER_PG_PORT:-5440}"
MLFLOW_PORT="${LOOPER_MLFLOW_PORT:-5050}"
AIRFLOW_PORT="${LOOPER_AIRFLOW_PORT:-8790}"
PG_BIN="${LOOPER_PG_BIN:-/usr/lib/postgresql/15/bin}"
JARS="$ROOT/.jars-cluster"
BOX_KEYS=$([ -z "${AWS_ACCESS_KEY_ID:-}" ] && echo yes || true)   # the box's own keys, not a secret
export LOOPER_S3_BUCKET="${LOOPER_S3_BUCKET:-looper}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-looper-local}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-looper-local-secret}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export LOOPER_PG_PASSWORD="${LOOPER_PG_PASSWORD:-looper-local}"
export LOOPER_ENV="${LOOPER_ENV:-cluster-local}"
export LOOPER_HOME="$ROOT"
export SPARK_LOCAL_IP=$HOST
export PATH="$VENV/bin:$PATH"
export SPARK_HOME="${SPARK_HOME:-$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export PYSPARK_PYTHON="$VENV/bin/python" PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
PG_URL="postgresql+psycopg2://looper:${LOOPER_PG_PASSWORD}@$HOST:$PG_PORT"

log() { echo "[cluster] $*"; }
die() { echo "[cluster] $*" >&2; exit 1; }
mkdir -p "$STATE/logs"

running() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
listening() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
wait_port() {  # NAME PORT [SECONDS]
    for _ in $(seq "${3:-60}"); do listening "$2" && return 0; running "$1" || break; sleep 1; done
    tail -20 "$STATE/logs/$1.log" >&2 || true
    die "$1 is not listening on $HOST:$2"
}
# start NAME CMD...: the command in the background, its pid in var/cluster/NAME.pid, its log in logs/
start() {
    local name="$1"; shift
    if running "$name"; then log "$name already running (pid $(cat "$STATE/$name.pid"))"; return 0; fi
    nohup "$@" >"$STATE/logs/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
    log "started $name (pid $!, log var/cluster/logs/$name.log)"
}
stop() {
    local name="$1" pid
    [ -f "$STATE/$name.pid" ] || return 0
    pid="$(cat "$STATE/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        log "stopped $name"
    fi
    rm -f "$STATE/$name.pid"
}

jars() {  # Delta + hadoop-aws + the AWS SDK v2 bundle, fetched once (conf/jars/cluster/pom.xml)
    local pom="$ROOT/conf/jars/cluster/pom.xml"
    if compgen -G "$JARS/hadoop-aws-*.jar" >/dev/null && compgen -G "$JARS/bundle-*.jar" >/dev/null \
        && compgen -G "$JARS/delta-spark_*.jar" >/dev/null; then return 0; fi
    command -v mvn >/dev/null || die "the cluster needs Maven to fetch hadoop-aws: apt-get install maven"
    log "fetching Delta, hadoop-aws and the AWS SDK bundle with Maven into .jars-cluster/ (once)"
    mkdir -p "$JARS"
    mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$JARS" \
        -DincludeGroupIds=io.delta,org.apache.hadoop,software.amazon.awssdk,software.amazon.s3.analyticsaccelerator \
        -DexcludeArtifactIds=hadoop-client-api,hadoop-client-runtime >"$STATE/logs/maven.log" 2>&1 \
        || { tail -20 "$STATE/logs/maven.log" >&2; die "Maven failed"; }
}

pyfiles() {  # looper_common as a zip for spark-submit --py-files (spark.py_files): the executors import it
    mkdir -p "$ROOT/var/dist"
    python - "$ROOT" "$ROOT/var/dist/looper_common.zip" <<'EOF'
import pathlib, sys, zipfile
root, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
tmp = target.with_suffix(".tmp")
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
    for path in sorted((root / "looper_common").rglob("*.py")):
        zf.write(path, path.relative_to(root))
tmp.replace(target)
EOF
    log "built var/dist/looper_common.zip (spark.py_files)"
}

spark_up() {
    export SPARK_DAEMON_MEMORY=512m SPARK_LOG_DIR="$STATE/logs" SPARK_PID_DIR="$STATE"
    start spark-master spark-class org.apache.spark.deploy.master.Master \
        --host $HOST --port $SPARK_PORT --webui-port $SPARK_UI_PORT
    wait_port spark-master $SPARK_PORT
    for n in 1 2; do
        mkdir -p "$STATE/spark-worker-$n"
        start "spark-worker-$n" spark-class org.apache.spark.deploy.worker.Worker \
            --host $HOST --port $((7090 + n)) --webui-port $((7080 + n)) --cores 1 --memory 1g \
            --work-dir "$STATE/spark-worker-$n" "spark://$HOST:$SPARK_PORT"
    done
    for _ in $(seq 60); do
        [ "$(curl -s "http://$HOST:$SPARK_UI_PORT/json/" | python -c 'import json,sys; print(sum(w["state"]=="ALIVE" for w in json.load(sys.stdin)["workers"]))' 2>/dev/null)" = 2 ] && return 0
        sleep 1
    done
    die "the two Spark workers did not register with the master (var/cluster/logs/spark-worker-*.log)"
}

s3_up() {
    start s3 moto_server -H $HOST -p "$S3_PORT"
    wait_port s3 "$S3_PORT"
    python - "$S3_PORT" "$LOOPER_S3_BUCKET" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}")
if sys.argv[2] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
    s3.create_bucket(Bucket=sys.argv[2])
EOF
}

pg() {  # run a PostgreSQL program as the owner of the data directory (initdb refuses root)
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_up() {
    if [ ! -x "$PG_BIN/initdb" ]; then
        [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed ($PG_BIN): apt-get install postgresql"
        log "installing PostgreSQL (Debian package)"
        apt-get install -y -q postgresql >"$STATE/logs/apt.log" 2>&1 || die "apt-get install postgresql failed"
        PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    fi
    local data="$STATE/postgres/data"
    mkdir -p "$STATE/postgres"
    [ "$(id -u)" = 0 ] && chown postgres "$STATE/postgres"
    if [ ! -f "$data/PG_VERSION" ]; then
        local pw="$STATE/postgres/.pw"; (umask 077; echo "$LOOPER_PG_PASSWORD" >"$pw")
        [ "$(id -u)" = 0 ] && chown postgres "$pw"
        pg "$PG_BIN/initdb" -D "$data" -U looper --pwfile="$pw" --auth=scram-sha-256 >"$STATE/logs/initdb.log" 2>&1 \
            || { rm -f "$pw"; tail -20 "$STATE/logs/initdb.log" >&2; die "initdb failed"; }
        rm -f "$pw"
    fi
    if ! pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        pg "$PG_BIN/pg_ctl" -D "$data" -l "$STATE/postgres/postgres.log" -w start \
            -o "-p $PG_PORT -c listen_addresses=$HOST -k $STATE/postgres" >/dev/null
        log "started postgres on $HOST:$PG_PORT (log var/cluster/postgres/postgres.log)"
    fi
    for db in mlflow airflow; do
        PGPASSWORD="$LOOPER_PG_PASSWORD" python - "$PG_PORT" "$db" <<'EOF'
import os, sys, psycopg2
conn = psycopg2.connect(host="127.0.0.1", port=sys.argv[1], user="looper", password=os.environ["PGPASSWORD"], dbname="postgres")
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (sys.argv[2],))
    if cur.fetchone() is None:
        cur.execute(f'CREATE DATABASE "{sys.argv[2]}"')
EOF
    done
}

mlflow_up() {
    MLFLOW_S3_ENDPOINT_URL="http://$HOST:$S3_PORT" start mlflow mlflow server \
        --backend-store-uri "$PG_URL/mlflow" --artifacts-destination "s3://$LOOPER_S3_BUCKET/mlflow" \
        --host $HOST --port "$MLFLOW_PORT" --workers 1
    wait_port mlflow "$MLFLOW_PORT" 180
}

airflow_env() {
    export AIRFLOW_HOME="$STATE/airflow" AIRFLOW_PORT="$AIRFLOW_PORT"
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$PG_URL/airflow"
    export AIRFLOW__CORE__EXECUTOR=LocalExecutor AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
    export AIRFLOW_CONN_SPARK_DEFAULT="{\"conn_type\": \"spark\", \"host\": \"spark://$HOST\", \"port\": $SPARK_PORT}"
}

airflow_up() { airflow_env; bash "$ROOT/scripts/airflow.sh" start; }
airflow_down() { airflow_env; bash "$ROOT/scripts/airflow.sh" stop; }

redis_up() { LOOPER_RCLUSTER_DIR="$STATE/redis-cluster" bash "$ROOT/scripts/redis-cluster.sh" start; }
redis_down() { LOOPER_RCLUSTER_DIR="$STATE/redis-cluster" bash "$ROOT/scripts/redis-cluster.sh" stop; }

up() {
    jars
    pyfiles
    redis_up
    s3_up
    postgres_up
    spark_up
    mlflow_up
    airflow_up
    log "up: Spark UI http://$HOST:$SPARK_UI_PORT, Airflow http://$HOST:$AIRFLOW_PORT, MLflow http://$HOST:$MLFLOW_PORT"
    log "use it from a shell with: eval \"\$(scripts/cluster.sh env)\""
}

down() {  # every part, whatever state an earlier `up` or test left
    airflow_down || true
    stop mlflow
    for n in 2 1; do stop "spark-worker-$n"; done
    stop spark-master
    if [ -f "$STATE/postgres/data/postmaster.pid" ]; then
        pg "$PG_BIN/pg_ctl" -D "$STATE/postgres/data" -m fast -w stop >/dev/null 2>&1 || true
        log "stopped postgres"
    fi
    stop s3
    redis_down || true
}

status() {
    for name in spark-master spark-worker-1 spark-worker-2 s3 mlflow; do
        if running "$name"; then echo "$name: running"; else echo "$name: stopped"; fi
    done
    if listening "$PG_PORT"; then echo "postgres: running"; else echo "postgres: stopped"; fi
    (airflow_env; bash "$ROOT/scripts/airflow.sh" status)
    LOOPER_RCLUSTER_DIR="$STATE/redis-cluster" bash "$ROOT/scripts/redis-cluster.sh" status || true
}

env_vars() {  # what a shell (or a test) exports to use the stack; the AWS values only if defaulted here
    echo "export LOOPER_ENV=$LOOPER_ENV LOOPER_HOME=$ROOT AIRFLOW_HOME=$STATE/airflow SPARK_LOCAL_IP=$HOST"
    echo "export AWS_REGION=$AWS_REGION"
    [ -n "$BOX_KEYS" ] && echo "export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
    return 0
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    env) env_vars ;;
    *) echo "usage: $0 {up|down|status|env}" >&2; exit 2 ;;
esac
