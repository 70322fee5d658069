"""Make vcrpy safe for a multi-threaded client (history fetch pool, several feeds, keep-alive).

vcrpy swaps urllib3's connection classes process-wide, and its ``force_reset()`` briefly puts
the REAL classes back, process-wide, whenever it builds a stub connection or sends a recorded
request for real. A second thread creating a connection in that moment gets a real,
unrecorded connection: while recording its request is silently missing from the cassette,
while replaying it goes to the network. :class:`ThreadSafety` closes that window: one
re-entrant lock is held by ``force_reset()`` and by urllib3's pool ``_get_conn``/``_new_conn``,
so no thread picks a connection class while another has the real ones back. Responses are
still read concurrently; only connection set-up and sending are serialized, and only while a
cassette is active.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["ThreadSafety"]

_LOCK = threading.RLock()


def _locked(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return function(*args, **kwargs)

    return wrapper


class ThreadSafety:
    """Installed right after vcrpy's patches, removed right before them (not re-entrant)."""

    def __init__(self) -> None:
        self._saved: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        import urllib3.connectionpool as cpool
        import vcr.patch as vcr_patch

        original_reset = vcr_patch.force_reset

        @contextlib.contextmanager
        def force_reset() -> Iterator[None]:
            with _LOCK, original_reset():
                yield

        self._swap(vcr_patch, "force_reset", force_reset)
        for pool in (cpool.HTTPConnectionPool, cpool.HTTPSConnectionPool):
            for name in ("_get_conn", "_new_conn"):
                self._swap(pool, name, _locked(getattr(pool, name)))

    def _swap(self, owner: Any, name: str, value: Any) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, _MISSING)))
        setattr(owner, name, value)

    def remove(self) -> None:
        while self._saved:
            owner, name, value = self._saved.pop()
            if value is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, value)


_MISSING = object()
