#!/usr/bin/env bash
# One-command, idempotent set-up of a Looper development machine:
# checks Python 3.11+ and Java 17+, builds .venv from the pinned lock, fetches the
# Delta jars into .jars/, installs and starts a local redis-server, creates var/.
# Each step is skipped when a stamp (sha256 of its input) says it is already done,
# so a second run takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
JARS="$ROOT/.jars"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "[bootstrap] $*"; }
die() { echo "[bootstrap] $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
stamp_matches() { [[ -f "$2" && "$(cat "$2")" == "$(sha "$1")" ]]; }
can_apt() { [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; }

# Run a noisy tool silently; show its output (colour codes stripped) only if it fails.
quietly() {
    local out
    out="$(mktemp)"
    if ! "$@" >"$out" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$out" | tail -n 40 >&2
        rm -f "$out"
        die "failed: $*"
    fi
    rm -f "$out"
}

apt_install() {
    log "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "$@" >/dev/null
}

find_python() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

check_java() {
    local version major
    command -v java >/dev/null || return 1
    # First line looks like: openjdk version "17.0.15" 2025-04-15 (or "1.8.0_392" for Java 8).
    version="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${version%%.*}"
    [[ "$major" == 1 ]] && major="$(echo "$version" | cut -d. -f2)"
    [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 17))
}

setup_venv() {
    local python="$1"
    if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "removing broken .venv (its interpreter no longer runs)"
        rm -rf "$VENV"
    fi
    if [[ ! -x "$VENV/bin/python" ]]; then
        if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
            local minor
            minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            can_apt || die "Looper needs the venv module: apt-get install python${minor}-venv"
            apt_install "python${minor}-venv"
        fi
        log "creating .venv with $("$python" --version 2>&1)"
        "$python" -m venv "$VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
    fi
    if ! stamp_matches requirements.txt "$VENV/.requirements.sha256"; then
        log "installing requirements.txt into .venv (about 4 minutes the first time)"
        "$VENV/bin/python" -m pip install -q -r requirements.txt
        sha requirements.txt >"$VENV/.requirements.sha256"
        rm -f "$VENV/.pyproject.sha256" # the lock may have replaced the editable install
    fi
    if ! stamp_matches pyproject.toml "$VENV/.pyproject.sha256"; then
        log "installing looper-common (editable)"
        quietly "$VENV/bin/python" -m pip install -q --no-deps -e .
        sha pyproject.toml >"$VENV/.pyproject.sha256"
    fi
    log "python ok: .venv ($("$VENV/bin/python" --version 2>&1))"
}

have_jars() {
    compgen -G "$JARS/delta-spark_*.jar" >/dev/null && compgen -G "$JARS/delta-storage-*.jar" >/dev/null
}

setup_jars() {
    local pom="conf/jars/pom.xml"
    if stamp_matches "$pom" "$JARS/.pom.sha256" && have_jars; then
        log "delta jars ok: $(cd "$JARS" && echo *.jar)"
        return 0
    fi
    command -v mvn >/dev/null || die "Looper needs Maven to fetch the Delta jars: apt-get install maven"
    log "fetching Delta jars with Maven into .jars/"
    mkdir -p "$JARS"
    rm -f "$JARS"/*.jar "$JARS/.pom.sha256"
    # Only io.delta: Spark already ships Scala, Hadoop, Parquet and Jackson.
    quietly mvn -q -B -f "$pom" dependency:copy-dependencies \
        -DincludeGroupIds=io.delta -DoutputDirectory="$JARS"
    have_jars || die "Maven finished but .jars/ lacks delta-spark_*.jar or delta-storage-*.jar"
    sha "$pom" >"$JARS/.pom.sha256"
    log "delta jars ok: $(cd "$JARS" && echo *.jar)"
}

setup_redis() {
    if ! command -v redis-server >/dev/null; then
        can_apt || die "Looper needs redis-server: apt-get install redis-server"
        apt_install redis-server
    fi
    bash "$ROOT/scripts/redis.sh" start
}

# The Spark driver's class-data archive (scripts/jvm_archive.py), rewritten when the JVM,
# Spark, the Delta jars or the script change: the archive only fits the JVM and classpath
# that wrote it, and holds the classes of the operations the script exercises.
setup_jvm_archive() {
    local dir="$ROOT/var/jvm" key
    local archive="$dir/spark-driver.jsa"
    key="$(java -version 2>&1 | head -n1) $("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)') $(cd "$JARS" && echo *.jar) $(sha "$ROOT/scripts/jvm_archive.py")"
    if [[ -f "$archive" && -f "$dir/.key" && "$(cat "$dir/.key")" == "$key" ]]; then
        log "jvm class-data archive ok: var/jvm/spark-driver.jsa"
        return 0
    fi
    log "writing the Spark driver's class-data archive (var/jvm/, once, about a minute)"
    mkdir -p "$dir"
    rm -f "$archive" "$dir/.key"
    quietly env LOOPER_HOME="$ROOT" PYSPARK_PYTHON="$VENV/bin/python" PYSPARK_DRIVER_PYTHON="$VENV/bin/python" \
        "$VENV/bin/spark-submit" --master "local[1]" \
        --conf "spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ArchiveClassesAtExit=$archive" \
        --jars "$(ls "$JARS"/*.jar | paste -sd, -)" "$ROOT/scripts/jvm_archive.py"
    [[ -f "$archive" ]] || die "the JVM wrote no archive at $archive"
    echo "$key" >"$dir/.key"
    log "jvm class-data archive ok: var/jvm/spark-driver.jsa"
}

PYTHON="$(find_python)" ||
    die "Looper needs Python 3.11+: apt-get install python3.11 python3.11-venv"
check_java || die "Looper needs Java 17+ for Spark: apt-get install openjdk-17-jdk-headless"

mkdir -p var/lake var/mlflow var/airflow var/redis var/sim
setup_venv "$PYTHON"
setup_jars
setup_jvm_archive
setup_redis
log "done"
