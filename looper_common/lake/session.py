"""The Spark session a job builds only if the lake picks Spark for one of its requests."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from looper_common.contracts.config import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class LazySession:
    """A session built on the first call, for jobs that may not need Spark at all.

    The lake reads small selections with delta-rs and needs Spark only for larger ones;
    calling the object builds the session once (from whichever thread asks first).
    """

    def __init__(self, settings: Settings, app_name: str) -> None:
        self._settings, self._app_name = settings, app_name
        self._session: SparkSession | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._session is not None

    def __call__(self) -> SparkSession:
        from looper_common.lake.spark import get_spark

        with self._lock:
            if self._session is None:
                self._session = get_spark(self._settings, self._app_name)
        return self._session
