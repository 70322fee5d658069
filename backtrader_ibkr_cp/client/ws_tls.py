"""A TLS socket that one thread may read while another writes.

``websockets``' threaded connection reads its socket on a thread of its own while the caller
sends on another. Python's :class:`ssl.SSLSocket` lets both threads into OpenSSL's one TLS
state at once, which OpenSSL does not allow. Right after a TLS 1.3 handshake it goes wrong in
practice: the reading thread is taking in the server's session tickets while the other sends
the WebSocket upgrade, and about 2 connections in 1,000 then never see the upgrade's answer
(measured against ``websockets``' own server on loopback; none with tickets turned off).
Most TLS 1.3 servers send tickets (Java's, which IBKR's gateway runs on, by default).

:class:`LockedTls` keeps the TLS socket non-blocking and lets one thread at a time into it;
a thread that must wait for the network waits outside the lock, so a reader blocked on a
quiet socket never holds up a send.
"""

from __future__ import annotations

import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["LockedTls"]

_T = TypeVar("_T")

#: Longest single wait for the network (seconds) before the TLS state is asked again: the
#: other thread may have taken in what this one was waiting for.
_POLL = 0.05


class LockedTls:
    """A socket-like wrapper of a handshaken :class:`ssl.SSLSocket` whose ``recv``, ``send``
    and ``sendall`` may run on two threads at once (see the module docstring). Timeouts set
    with :meth:`settimeout` bound each call; ``None`` waits as long as it takes."""

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self._tls = tls
        self._timeout = tls.gettimeout()
        tls.setblocking(False)
        self._lock = threading.Lock()

    # -- what websockets calls -------------------------------------------------------------

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of application data (more when the TLS layer holds more, so
        nothing is left where a ``select`` on the socket cannot see it); ``b""`` at the end."""
        try:
            data = self._locked(lambda: self._tls.recv(size))
            while data and (pending := self._locked(self._tls.pending)):
                data += self._locked(lambda: self._tls.recv(pending))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""
        return data

    def send(self, data: bytes | bytearray | memoryview) -> int:
        return self._locked(lambda: self._tls.send(data))

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        with memoryview(data) as view, view.cast("B") as octets:
            sent = 0
            while sent < len(octets):
                sent += self.send(octets[sent:])

    def shutdown(self, how: int) -> None:
        """Shut the connection down under TLS (a thread waiting to read wakes up and reads
        the end); the TLS state stays for the thread that may still be in it."""
        socket.socket.shutdown(self._tls, how)

    def close(self) -> None:
        self._tls.close()

    def fileno(self) -> int:
        return self._tls.fileno()

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tls, name)

    # -- one thread at a time in the TLS state ---------------------------------------------

    def _locked(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` under the lock; when TLS must wait for the network, wait without it
        (at most the timeout), then try again."""
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            with self._lock:
                try:
                    return call()
                except ssl.SSLWantReadError:
                    event = selectors.EVENT_READ
                except ssl.SSLWantWriteError:
                    event = selectors.EVENT_WRITE
            self._wait(event, deadline)

    def _wait(self, event: int, deadline: float | None) -> None:
        wait = _POLL
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            wait = min(wait, left)
        with selectors.DefaultSelector() as selector:
            selector.register(self._tls, event)
            selector.select(wait)
