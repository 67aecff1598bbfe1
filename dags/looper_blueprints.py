"""Looper's Airflow DAGs: every blueprint of the blueprints folder, as the settings lay them out.

``dags.layout: blueprint`` (the default): one DAG ``looper_<blueprint>`` per blueprint,
one task per stage (``looper_common/dagfactory/blueprint_dag.py``). ``dags.layout:
stage``: one DAG ``looper_stages_<schedule>`` per schedule, each stage one task for all
its blueprints (``looper_common/dagfactory/stage_dag.py``). Each DAG's own documentation
(in the UI) says what its tasks do.
"""

from __future__ import annotations

import os
from pathlib import Path

from looper_common.dagfactory import build_dags

HOME = Path(os.environ.get("LOOPER_HOME") or Path(__file__).resolve().parent.parent)

globals().update(build_dags(HOME))
