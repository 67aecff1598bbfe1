"""Clients still open at process exit are closed: what they kept is flushed, with a bounded wait.

Open clients are tracked weakly (a client product code drops is collected as usual),
except while they hold unsent events: then strongly, so those events are flushed, or
counted and logged as lost, at exit instead of vanishing with the object.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from typing import Protocol

log = logging.getLogger(__name__)


class _Closable(Protocol):
    def close(self, timeout_s: float | None = None) -> int: ...


_open: weakref.WeakSet[_Closable] = weakref.WeakSet()
_holding: set[_Closable] = set()


def track(client: _Closable) -> None:
    """Close ``client`` at exit if it is still open then."""
    _open.add(client)


def holding(client: _Closable, has_unsent: bool) -> None:
    """Keep ``client`` alive until exit while it has unsent events."""
    if has_unsent:
        _holding.add(client)
    else:
        _holding.discard(client)


def forget(client: _Closable) -> None:
    """``client`` was closed."""
    _open.discard(client)
    _holding.discard(client)


@atexit.register
def close_all() -> None:
    """Close every client still open (run at exit; tests call it at the end of a session)."""
    for client in {*_open, *_holding}:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - exit goes on; the error is logged
            log.exception("closing a LooperClient at exit failed")
