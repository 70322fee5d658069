"""Hand a ``GET /v1/api/ws`` from the HTTP handler over to ``websockets``.

The upgrade arrives on the simulator's HTTP(S) port, where :mod:`http.server` has already read
the request line and headers. They are written back out as bytes and fed to a sans-I/O
:class:`websockets.server.ServerProtocol`, which validates the handshake and builds the answer
(``101 Switching Protocols``, or ``400``/``426`` for a request that is not a WebSocket
upgrade); a caller may reject it with its own status instead. After a 101 the socket (plain or
TLS) is wrapped in ``websockets``' threaded :class:`~websockets.sync.connection.Connection`,
which does all framing from then on.

A client cannot send frames before it has read the 101, so nothing of the WebSocket stream is
left in the HTTP handler's read buffer at hand-over time.
"""

from __future__ import annotations

import contextlib
import http
import socket
from email.message import Message

from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.sync.connection import Connection

__all__ = ["CLOSE_TIMEOUT", "MAX_MESSAGE_BYTES", "accept", "raw_request"]

#: The largest message a client may send (commands are a few hundred bytes).
MAX_MESSAGE_BYTES = 1 << 20
#: Seconds a closing handshake waits for the client's close frame.
CLOSE_TIMEOUT = 2.0


def raw_request(requestline: str, headers: Message) -> bytes:
    """The request head as it came in: request line, header lines, blank line."""
    lines = [requestline]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def accept(
    sock: socket.socket, head: bytes, *, reject: tuple[int, str] | None = None
) -> tuple[Connection | None, Request | None]:
    """Answer the upgrade request ``head`` on ``sock``.

    Returns ``(connection, request)`` after a 101; ``(None, request)`` when the handshake was
    refused (``reject`` = ``(status, text)`` forces that answer), ``(None, None)`` when
    ``head`` is not a readable HTTP request (nothing is answered then). The caller closes
    ``sock`` when no connection is returned.
    """
    protocol = ServerProtocol(max_size=MAX_MESSAGE_BYTES)
    protocol.receive_data(head)
    events = protocol.events_received()
    request = events[0] if events and isinstance(events[0], Request) else None
    if request is None:
        return None, None
    if reject is not None:
        response = protocol.reject(http.HTTPStatus(reject[0]), reject[1])
    else:
        response = protocol.accept(request)
    protocol.send_response(response)
    data = b"".join(protocol.data_to_send())
    try:
        sock.settimeout(None)
        sock.sendall(data)
    except OSError:
        return None, request
    if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_WR)
        return None, request
    connection = Connection(
        sock, protocol, ping_interval=None, ping_timeout=None, close_timeout=CLOSE_TIMEOUT
    )
    connection.request = request
    connection.response = response
    return connection, request
