# Looper: one command sets everything up. `make test` and `make demo` bootstrap first
# (idempotent: seconds when nothing changed), so a fresh machine needs nothing else.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_ARGS ?=

export LOOPER_ENV ?= local
export LOOPER_HOME := $(CURDIR)
export LOOPER_REDIS_PORT ?= 6390
export LOOPER_REDIS_URL ?= redis://127.0.0.1:$(LOOPER_REDIS_PORT)/0
export PYSPARK_PYTHON := $(PYTHON)
export PYSPARK_DRIVER_PYTHON := $(PYTHON)
export SPARK_LOCAL_IP ?= 127.0.0.1
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow

.PHONY: help bootstrap test demo lint bench redis-start redis-stop redis-status airflow airflow-stop mlflow test-cluster cluster-up cluster-down cluster-status spark-connect spark-connect-stop clean distclean

help: ## list the targets
	@echo "Looper make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'
	@echo "Variables: PYTEST_ARGS='-k name -x', DEMO_ARGS='--fault default --fault-day 3 --days 3', LOOPER_REDIS_PORT=$(LOOPER_REDIS_PORT), LOOPER_ENV=$(LOOPER_ENV)"

bootstrap: ## set up .venv, Delta jars (.jars/), redis-server and var/ (idempotent)
	@bash scripts/bootstrap.sh

test: bootstrap ## run the test suite but the cluster test (pass options with PYTEST_ARGS=...)
	$(PYTHON) -m pytest tests --ignore=tests/cluster $(PYTEST_ARGS)

test-cluster: bootstrap ## the loop on the cluster in a box (tests/cluster: starts and stops its own stack)
	@status=0; $(PYTHON) -m pytest tests/cluster $(PYTEST_ARGS) || status=$$?; \
	  LOOPER_CLUSTER_DIR=$(CURDIR)/var/cluster-test bash scripts/cluster.sh down >/dev/null 2>&1 || true; exit $$status

demo: bootstrap ## run the end-to-end demo on the embedded stack (options with DEMO_ARGS=...)
	$(PYTHON) scripts/demo.py $(DEMO_ARGS)

lint: bootstrap ## ruff check
	$(VENV)/bin/ruff check .

bench: bootstrap ## run the benchmarks (ratios against a baseline)
	$(PYTHON) bench/run_all.py

airflow: bootstrap ## start Airflow (api-server + UI on 127.0.0.1:$AIRFLOW_PORT, default 8080; scheduler, dag-processor)
	@bash scripts/airflow.sh start

airflow-stop: ## stop the Airflow services started by `make airflow`
	@bash scripts/airflow.sh stop

MLFLOW_PORT ?= 5000
mlflow: bootstrap ## start the MLflow UI (Ctrl-C to stop); with LOOPER_MLFLOW_WEBHOOK_SECRET set, also `looper alias-webhook` (UI alias moves recorded when made)
	@MLFLOW_PORT=$(MLFLOW_PORT) bash scripts/mlflow.sh

cluster-up: bootstrap ## start the cluster in a box (Spark master + 2 workers, S3, PostgreSQL, MLflow, Airflow, Redis Cluster; conf/cluster-local.yaml)
	@bash scripts/cluster.sh up

cluster-down: ## stop every service of the cluster in a box (also after a failed test)
	@bash scripts/cluster.sh down

cluster-status: ## which services of the cluster in a box run
	@bash scripts/cluster.sh status

redis-start: ## start the local redis-server (port LOOPER_REDIS_PORT)
	@bash scripts/redis.sh start

redis-stop: ## stop the local redis-server
	@bash scripts/redis.sh stop

redis-status: ## is the local redis-server up?
	@bash scripts/redis.sh status

spark-connect: bootstrap ## start the local Spark Connect server the jobs share (else the first job needing Spark does)
	@$(VENV)/bin/looper spark-connect start

spark-connect-stop: ## stop the local Spark Connect server
	@if [ -x $(VENV)/bin/looper ]; then $(VENV)/bin/looper spark-connect stop; fi

clean: redis-stop airflow-stop spark-connect-stop ## remove local state (var/, Spark leftovers); keep .venv and .jars
	rm -rf var spark-warehouse metastore_db derby.log

distclean: clean ## also remove .venv and .jars (next bootstrap starts from scratch)
	rm -rf .venv .jars
