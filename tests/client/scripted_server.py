"""A scripted loopback HTTP server for the answers a real gateway (or its simulator) does not
give on demand: HTML pages, redirects, truncated bodies, hung or dropped connections."""

from __future__ import annotations

import socket
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: The most real seconds a held answer waits for its event (a safety net for a failing test).
HOLD_LIMIT = 30.0


@dataclass
class Reply:
    """One scripted answer. ``body`` is sent as is; ``length`` overrides Content-Length
    (a larger value makes a truncated body); ``hold``: the answer waits until the test sets
    this event (at most :data:`HOLD_LIMIT` seconds, then the connection closes unanswered),
    and ``held`` is set once the request has arrived and waits; ``drop`` closes the
    connection without an answer; ``stall``: after the headers and ``body`` (give a larger
    ``length``), the rest of the body waits for this event (at most :data:`HOLD_LIMIT`
    seconds), as a gateway whose answer stops mid-way does."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None
    hold: threading.Event | None = None
    held: threading.Event = field(default_factory=threading.Event)
    drop: bool = False
    stall: threading.Event | None = None


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Scripted:
    """Answers each path with its queued replies in order (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = defaultdict(list)
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def on(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.replies["/v1/api" + path] = list(replies)

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for s in self.seen if s.path.split("?")[0] == "/v1/api" + path)

    def _next(self, path: str) -> Reply:
        with self.lock:
            queue = self.replies.get(path)
            if not queue:
                return Reply(404, b'{"error": "not scripted"}')
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with scripted.lock:
                    scripted.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                reply = scripted._next(path)
                if reply.hold is not None:
                    reply.held.set()
                    if not reply.hold.wait(HOLD_LIMIT):
                        reply = Reply(drop=True)
                if reply.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                size = reply.length if reply.length is not None else len(reply.body)
                self.send_header("Content-Length", str(size))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.length is not None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(reply.body)
                if reply.stall is not None:
                    self.wfile.flush()
                    reply.stall.wait(HOLD_LIMIT)

            do_GET = do_POST = _answer

        return Handler

    def __enter__(self) -> Scripted:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
