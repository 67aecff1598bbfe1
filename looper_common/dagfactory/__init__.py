"""The DAGs of the blueprints folder, as ``dags/looper_blueprints.py`` builds them (``build_dags``).

``dags.layout`` of the settings picks the shape: ``blueprint`` (one DAG per blueprint,
``blueprint_dag``) or ``stage`` (one DAG per schedule, one task per stage for all its
blueprints, ``stage_dag``). Parsing imports Airflow and the contracts only: nothing heavy.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from airflow.sdk import DAG

from looper_common.contracts.blueprint import load_blueprints
from looper_common.contracts.config import load_settings
from looper_common.dagfactory.blueprint_dag import airflow_dag_defaults, build_dag
from looper_common.dagfactory.stage_dag import build_stage_dags


def build_dags(home: Path) -> dict[str, DAG]:
    """The DAGs of every blueprint under ``home``'s settings, from one reading of the settings, the blueprints,
    the jars and Airflow's DAG defaults: one per blueprint, or one per schedule (``dags.layout: stage``)."""
    settings = load_settings(home=home)
    blueprints = load_blueprints(settings.blueprints_dir)
    dag_defaults = airflow_dag_defaults()
    if settings.dags.layout == "stage":
        return build_stage_dags(blueprints, settings, dag_defaults)
    jars = sorted(glob.glob(os.path.join(settings.spark.jars_dir, "*.jar"))) if settings.spark.jars_dir else []
    return {
        f"looper_{name}": build_dag(name, blueprint, settings, ",".join(jars) or None, dag_defaults)
        for name, blueprint in blueprints.items()
    }
