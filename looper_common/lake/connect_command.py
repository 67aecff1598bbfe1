"""``looper spark-connect {start,stop,status}``: the local Spark Connect server of ``spark.connect``."""

from __future__ import annotations

import argparse
import logging
import sys

DESCRIPTION = """\
Start, stop or show the Spark Connect server that the jobs' Spark sessions share.

With spark.connect set in conf/<env>.yaml (sc://127.0.0.1:15002 on the embedded stack), a
job that needs Spark (join_feedback, a large read) connects to that server instead of
starting a JVM of its own. A local server starts by itself on the first job that needs it
and stays up; `start` starts it ahead of time, `stop` stops it (`make clean` does too).
Its log: var/spark-connect/<port>/server.log. Exit status 2 when spark.connect is unset
or not a local address.

examples:
  looper spark-connect status
  looper spark-connect start
  LOOPER_SPARK_CONNECT=sc://127.0.0.1:15010 looper spark-connect start
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("start", "stop", "status"), help="what to do with the server")
    parser.add_argument("--env", default=None,
                        help="settings environment (conf/<env>.yaml); default $LOOPER_ENV or local")


def run(args: argparse.Namespace) -> int:
    from looper_common.contracts.config import ConfigError, load_settings
    from looper_common.lake import connect_server

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = load_settings(args.env)
        if args.action == "status":
            print(connect_server.status(settings))
            return 0
        if not settings.spark.connect:
            raise connect_server.ConnectServerError(
                "spark.connect is not set in this environment: jobs start their own Spark sessions")
        address = connect_server.ConnectAddress.parse(settings.spark.connect)
        if not address.local:
            raise connect_server.ConnectServerError(
                f"{settings.spark.connect} is not on this machine: start and stop it where it runs")
        if args.action == "start":
            pid = connect_server.start(settings)
            print(f"Spark Connect server {settings.spark.connect}: "
                  + ("already running" if pid is None else f"started (pid {pid})"))
        else:
            stopped = connect_server.stop(settings)
            print(f"Spark Connect server {settings.spark.connect}: " + ("stopped" if stopped else "not running"))
        return 0
    except (ConfigError, connect_server.ConnectServerError) as err:
        print(f"looper spark-connect: error: {err}", file=sys.stderr)
        return 2
