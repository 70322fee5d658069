"""Gates: the answers to one API path held until a test opens the gate.

A test that needs requests in flight together (a concurrency limit, a queue in front of the
simulator) holds their answers at a gate rather than adding a latency and hoping they
overlap. Each *admitted* request to the gated path (a 429 is answered at once) waits at the
gate, keeping its history slot, until :meth:`Gate.open` or the simulator stops;
:meth:`Gate.wait_held` blocks until that many answers wait there. A gate applies to requests
that arrive while it is registered (:meth:`~.facade.GatewaySimulator.gate`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["Gate", "Gates"]


class Gate:
    """Holds the answers to ``path`` (an API path without ``/v1/api``) until opened.

    Use as a context manager: leaving the block opens the gate. Thread-safe.
    """

    def __init__(self, path: str, on_open: Callable[[Gate], None] | None = None) -> None:
        self.path = path
        self._cond = threading.Condition()
        self._open = False
        self._held = 0
        self._on_open = on_open
        #: Answers that waited at this gate and went on.
        self.passed = 0

    @property
    def held(self) -> int:
        """Answers waiting at the gate now."""
        with self._cond:
            return self._held

    @property
    def is_open(self) -> bool:
        with self._cond:
            return self._open

    def wait_held(self, count: int, timeout: float) -> bool:
        """Block until ``count`` answers wait at the gate (True) or ``timeout`` real seconds
        passed (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._held >= count, timeout)

    def open(self) -> None:
        """Let every held answer go, and every later one through at once (idempotent)."""
        with self._cond:
            self._open = True
            self._cond.notify_all()
        if self._on_open is not None:
            self._on_open(self)

    def pass_through(self) -> None:
        """Wait here until the gate is open (called by the request's server thread)."""
        with self._cond:
            if self._open:
                return
            self._held += 1
            self._cond.notify_all()
            try:
                self._cond.wait_for(lambda: self._open)
            finally:
                self._held -= 1
                self.passed += 1

    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.open()

    def __repr__(self) -> str:
        state = "open" if self.is_open else f"closed, {self.held} held"
        return f"Gate({self.path!r}, {state})"


class Gates:
    """The gates of one simulator, by API path. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, Gate] = {}

    def add(self, path: str) -> Gate:
        """A new closed gate for ``path``; ValueError while another one is closed there."""
        with self._lock:
            current = self._gates.get(path)
            if current is not None and not current.is_open:
                raise ValueError(f"{path} already has a closed gate; open it first")
            gate = Gate(path, on_open=self._forget)
            self._gates[path] = gate
            return gate

    def get(self, path: str) -> Gate | None:
        """The closed gate of ``path``, if any."""
        with self._lock:
            return self._gates.get(path)

    def open_all(self) -> None:
        """Open every gate (the simulator stops)."""
        with self._lock:
            gates = list(self._gates.values())
        for gate in gates:
            gate.open()

    def _forget(self, gate: Gate) -> None:
        with self._lock:
            if self._gates.get(gate.path) is gate:
                del self._gates[gate.path]
