"""HTTP(S) plumbing: a threading HTTP/1.1 server on loopback that executes gateway outcomes.

Threading model: one daemon thread runs the accept loop; every connection gets its own handler
thread (keep-alive, ``Content-Length`` on every response). TLS handshakes happen in the handler
thread so a slow client never blocks the accept loop. The server tracks open connections so
:meth:`SimHTTPServer.stop` can cut them (including connections held by a ``timeout`` fault)
and join every thread quickly.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .gateway import API_PREFIX, Action, Gateway
from .wire import Response
from .ws_hub import WS_PATH, WebSocketHub

__all__ = ["SimHTTPServer"]

_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")
_MAX_BODY = 1 << 20  # bytes; larger request bodies answer 413
_JOIN_SECONDS = 5.0  # how long stop() waits for connection threads in total


class _BodyTooLarge(ValueError):
    """The request body is larger than the simulator accepts (answered 413)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "IBKRGatewaySimulator/1.0"
    sys_version = ""
    timeout = 300.0  # seconds an idle keep-alive connection is kept open
    server: SimHTTPServer

    # -- plumbing ----------------------------------------------------------------------------

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (OSError, ValueError) as error:
                _LOG.debug("TLS handshake with %s failed: %s", self.client_address, error)
                self.close_connection = True
                return
        super().handle()

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header follows the simulated clock (the gateway's clock)."""
        if timestamp is None:
            timestamp = self.server.now().timestamp()
        return email.utils.formatdate(timestamp, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("%s %s", self.address_string(), format % args)

    # -- methods -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        hub = self.server.websockets
        if hub is not None and urlsplit(self.path).path == API_PREFIX + WS_PATH:
            self.close_connection = True  # the socket is the WebSocket's from now on
            hub.serve(self)
            return
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        body = self._read_body(method)
        if body is None:
            return
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        outcome = self.server.gateway.handle(method, split.path, query, body)
        stop = self.server.stop_event
        freed = threading.Event()

        def release() -> None:
            # Frees the request's history slot once: as soon as its work is done, before
            # the client can read the answer (and send its next request into the slot).
            if outcome.release is not None and not freed.is_set():
                freed.set()
                outcome.release()

        try:
            if outcome.gate is not None:
                outcome.gate.pass_through()  # stop() opens every gate
            if outcome.delay > 0 and stop.wait(outcome.delay):
                self.close_connection = True
                return
            if outcome.action is Action.RESET:
                self._reset()
            elif outcome.action is Action.HOLD:
                release()  # a black-holed request is not work in flight
                stop.wait(outcome.hold)
                self.close_connection = True
            else:
                assert outcome.response is not None
                release()
                self._send(outcome.response)
        finally:
            release()

    def _read_body(self, method: str) -> bytes | None:
        """The request body (de-chunked); None after answering 400/411/413 itself."""
        encoding = self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        try:
            if "chunked" in encoding:
                return self._read_chunked()
            if length is not None:
                size = int(length)
                if size < 0:
                    raise ValueError(f"Content-Length {length} is negative")
                if size > _MAX_BODY:
                    raise _BodyTooLarge(f"body of {size} bytes; at most {_MAX_BODY}")
                return self.rfile.read(size)
        except _BodyTooLarge as error:
            self._fail(413, str(error))
            return None
        except ValueError as error:
            self._fail(400, f"malformed request body: {error}")
            return None
        if method in ("POST", "PUT"):
            self._fail(411, "Length Required: POST requests need a Content-Length header")
            return None
        return b""

    def _read_chunked(self) -> bytes:
        """Read a ``Transfer-Encoding: chunked`` body (ValueError when malformed)."""
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                raise _BodyTooLarge(f"chunked body over {_MAX_BODY} bytes")
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _fail(self, status: int, message: str) -> None:
        self.close_connection = True
        self._send(Response.error(status, message).with_headers(("Connection", "close")))

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
        self.close_connection = True
        connection = self.connection
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile.close()
        self.rfile.close()
        connection.close()


class SimHTTPServer(ThreadingHTTPServer):
    """The simulator's HTTP(S) server; ``ssl_context`` None serves plain HTTP; ``websockets``
    takes over ``GET /v1/api/ws`` (the connection's handler thread then runs the socket)."""

    daemon_threads = True
    block_on_close = False  # daemon handler threads are tracked and joined by stop()
    request_queue_size = 128
    #: SO_REUSEADDR: a restart on the same port must not wait for the TIME_WAIT connections
    #: that stop() leaves behind by closing client connections server-side (on Linux this
    #: never lets two servers listen on one port; Windows' SO_REUSEADDR would, so not there).
    allow_reuse_address = os.name != "nt"

    def __init__(
        self,
        address: tuple[str, int],
        gateway: Gateway,
        now: Callable[[], datetime],
        ssl_context: ssl.SSLContext | None = None,
        websockets: WebSocketHub | None = None,
    ) -> None:
        self.gateway = gateway
        self.websockets = websockets
        self.now = now
        self.ssl_context = ssl_context
        self.stop_event = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._handlers: list[threading.Thread] = []
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a daemon thread the server tracks and joins on stop."""
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"ibkr-sim-{self.server_address[1]} (process_request_thread)",
        )
        thread.daemon = True
        with self._connections_lock:
            self._connections.add(request)
            self._handlers = [t for t in self._handlers if t.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.debug("connection from %s ended with an error", client_address, exc_info=True)

    def start(self) -> None:
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="ibkr-sim-accept"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, cut open connections, join every thread, close the socket."""
        self.stop_event.set()
        self.gateway.gates.open_all()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)
        self.server_close()
        with self._connections_lock:
            handlers, self._handlers = self._handlers, []
        deadline = time.monotonic() + _JOIN_SECONDS
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                _LOG.warning("simulator connection thread %s did not stop", thread.name)
