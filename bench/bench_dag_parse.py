"""Parsing the DAG file with many blueprints: the factory vs the one on ``main``.

Generates N blueprints (copies of ``notification_send`` under other names) into a
scratch folder and parses the DAG file over them with Airflow's ``DagBag``, as the
DAG processor does, then serializes the DAGs (the processor's next step). The baseline
is ``git show <ref>:dags/looper_blueprints.py`` (default ``main``), parsed in the same
run, alternating with the project's file. Each parse runs in a fresh Python process
(Airflow imported first, not timed), so the first parse pays the DAG file's own imports
as it does in the processor's fresh child; a second parse in the same process shows the
factory's work alone.

The baseline does less per blueprint: it reads each blueprint as raw YAML, where the
project validates it into the strict ``Blueprint`` model. It does more per task: it
reads ``conf/<env>.yaml`` and globs the jars once per task (seven per blueprint).

    python bench/bench_dag_parse.py               # 1,000 blueprints, 3 rounds (goal: first parse < 10 s)
    python bench/bench_dag_parse.py --quick       # 20 blueprints, 3 rounds (prints only)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import _common as C
import yaml

DAG_FILE = "looper_blueprints.py"


def write_blueprints(folder: Path, count: int) -> None:
    """``count`` valid blueprints, ``bench_000`` ..., each a renamed ``notification_send``."""
    template = yaml.safe_load((C.ROOT / "blueprints" / "notification_send.yaml").read_text())
    for i in range(count):
        name = f"bench_{i:03d}"
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({**template, "name": name}))


def child(dag_folder: str) -> None:
    """One measurement, in this fresh process: two parses and one serialization; prints JSON."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    counts = {"yaml_loads": 0, "jar_globs": 0}
    safe_load, real_glob = yaml.safe_load, glob.glob

    def counted_safe_load(stream):
        counts["yaml_loads"] += 1
        return safe_load(stream)

    def counted_glob(pattern, *args, **kwargs):
        counts["jar_globs"] += str(pattern).endswith(".jar")
        return real_glob(pattern, *args, **kwargs)

    yaml.safe_load, glob.glob = counted_safe_load, counted_glob
    started, cpu_started = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=dag_folder)
    first, first_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    per_parse = dict(counts)
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    started = time.perf_counter()
    for dag in bag.dags.values():
        DagSerialization.to_dict(dag)
    serialize = time.perf_counter() - started
    started = time.perf_counter()
    DagBag(dag_folder=dag_folder)
    second = time.perf_counter() - started
    print(json.dumps({
        "first": first, "first_cpu": first_cpu, "second": second, "serialize": serialize, "dags": len(bag.dags),
        "tasks": sum(len(d.tasks) for d in bag.dags.values()), **per_parse,
    }))


def measure(dag_folder: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(dag_folder)],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"parsing {dag_folder} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blueprints", type=int, default=None, help="blueprints to generate (default 1000)")
    parser.add_argument("--rounds", type=int, default=None, help="alternated measurements each (default 3)")
    parser.add_argument("--baseline-ref", default="main", help="git ref of the baseline DAG file")
    parser.add_argument("--quick", action="store_true", help="20 blueprints, 3 rounds")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    C.add_docs_option(parser)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    count = args.blueprints or (20 if args.quick else 1000)
    rounds = args.rounds or 3
    baseline_text = subprocess.run(["git", "show", f"{args.baseline_ref}:dags/{DAG_FILE}"], cwd=C.ROOT,
                                   capture_output=True, text=True, check=True).stdout

    with C.temp_dir("looper-bench-dag-parse-") as scratch:
        folders = {"baseline": scratch / "dags_baseline", "project": scratch / "dags_project"}
        for label, folder in folders.items():
            folder.mkdir()
            text = baseline_text if label == "baseline" else (C.ROOT / "dags" / DAG_FILE).read_text()
            (folder / DAG_FILE).write_text(text)
        blueprints = scratch / "blueprints"
        blueprints.mkdir()
        write_blueprints(blueprints, count)
        env = {
            **os.environ,
            "LOOPER_HOME": str(C.ROOT),
            "LOOPER_BLUEPRINTS_DIR": str(blueprints),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(C.ROOT), os.environ.get("PYTHONPATH")])),
            "AIRFLOW_HOME": str(scratch / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # the measurement, not Airflow's 30 s import limit, decides: on a loaded machine a
            # parse can pass it (see the load printed with the figures)
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
        }
        results: dict[str, list[dict]] = {"baseline": [], "project": []}
        for i in range(rounds):
            order = ("baseline", "project") if i % 2 == 0 else ("project", "baseline")
            for label in order:
                results[label].append(measure(folders[label], env))
                print(f"round {i + 1}/{rounds} {label}: {results[label][-1]}", flush=True)

    def med(label: str, key: str) -> float:
        return C.median([r[key] for r in results[label]])

    base, proj = results["baseline"][0], results["project"][0]
    if (base["dags"], base["tasks"]) != (proj["dags"], proj["tasks"]) or proj["dags"] != count:
        raise SystemExit(f"the two files built different DAGs: {base} vs {proj}")
    rows = []
    for key, what in (("first", "first parse in a fresh process (DAG file's imports included)"),
                      ("first_cpu", "CPU seconds of that first parse (`process_time`; less moved by load)"),
                      ("second", "second parse, same process (the factory's work alone)"),
                      ("serialize", "serializing the DAGs (`DagSerialization.to_dict`)")):
        b, p = med("baseline", key), med("project", key)
        rows.append([what, f"{b:.2f}", f"{p:.2f}", f"{b / p:.1f}x"])
    rows.append(["YAML files read per parse", base["yaml_loads"], proj["yaml_loads"], ""])
    rows.append(["jar globs per parse", base["jar_globs"], proj["jar_globs"], ""])
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    body = "\n".join([
        f"`dags/{DAG_FILE}` over {count} generated blueprints ({proj['dags']} DAGs, {proj['tasks']} tasks), "
        f"parsed with `DagBag` in a fresh process per measurement, {rounds} rounds alternating with the "
        f"baseline, `git show {args.baseline_ref}:dags/{DAG_FILE}`. Medians in seconds; the ratio is "
        "baseline / project. Goal: the first parse of 1,000 blueprints under 10 s (Airflow's default "
        "import timeout is 30 s). Counted per parse: YAML documents read with `yaml.safe_load` (the "
        "blueprints go through libyaml's `CSafeLoader`, not counted) and jar globs.",
        "",
        C.table(["", f"baseline `{args.baseline_ref}` (s)", "project (s)", "ratio"], rows),
        "",
        f"`uptime` at the end: `{uptime}`.",
    ])
    print("\n" + body)
    if C.docs_wanted(args):
        key = "dag_parse" if count == 200 else f"dag_parse_{count}"  # the 200-blueprint section stays
        C.write_section(key, f"Parsing the DAG file: {count} blueprints", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
