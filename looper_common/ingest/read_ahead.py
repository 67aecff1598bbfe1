"""Produce the next item in a thread while the caller works on this one (reading overlaps writing)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


def read_ahead(produce: Callable[[], T | None]) -> Iterator[T]:
    """What ``produce`` returns until None, the next one made in a thread while the caller uses this one.

    At most one item waits; an error in the thread is raised in the caller. For
    ingestion, producing only moves entries to the group's pending list (nothing is
    acknowledged there), so stopping or crashing at any point loses nothing.
    """
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                item = produce()
                ready.put(item)
                if item is None:
                    return
        except BaseException as err:  # handed to the caller, raised there
            ready.put(err)

    reader = threading.Thread(target=run, name="read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                return
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a pending put, then let the thread finish its read
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
