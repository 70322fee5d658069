"""A small thread that keeps the order engine on time when no request arrives.

Fills, expiries and auctions happen on the simulated clock; requests advance the engine too,
but a client that only listens (the WebSocket, a test reading ``sim.account``) must still see
them. :class:`EngineTicker` calls ``advance()`` every ``interval`` real seconds until
:meth:`~EngineTicker.stop` (signal, then join; returns within about one interval).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["EngineTicker"]

_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")


class EngineTicker:
    """Runs ``advance`` every ``interval`` seconds (> 0) in a daemon thread named ``name``."""

    def __init__(self, advance: Callable[[], None], interval: float, name: str) -> None:
        if not interval > 0:
            raise ValueError(f"ticker interval must be > 0 seconds, got {interval!r}")
        self._advance = advance
        self._interval = interval
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (no-op when running)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Signal the thread and join it (no-op when not running)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._advance()
            except Exception:  # keep ticking: one bad step must not stop the clock
                _LOG.exception("simulator order engine tick failed")
