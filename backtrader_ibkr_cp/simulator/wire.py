"""Transport-neutral request and response values passed between the server and the endpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["HTML_TYPE", "JSON_TYPE", "TEXT_TYPE", "Request", "Response", "format_utc"]

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the endpoints see it.

    ``path`` is the API path after ``/v1/api`` (``"/iserver/auth/status"``); ``query`` keeps the
    first value of each query parameter; ``body`` is the raw (de-chunked) request body;
    ``params`` holds the named parts of a templated path (``{"order_id": "123"}``).
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)

    def json_body(self) -> Any:
        """The body decoded as JSON (None when empty); ValueError when it is not JSON."""
        if not self.body.strip():
            return None
        return json.loads(self.body)

    def param(self, name: str) -> Any:
        """``name`` from the query string, else from a JSON object body, else None."""
        if name in self.query:
            return self.query[name]
        try:
            body = self.json_body()
        except ValueError:
            return None
        return body.get(name) if isinstance(body, dict) else None


@dataclass(frozen=True)
class Response:
    """A complete HTTP response: status, body bytes, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(
        cls, value: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()
    ) -> Response:
        """A JSON response (compact separators, like the gateway)."""
        body = json.dumps(value, separators=(",", ":")).encode()
        return cls(status, body, JSON_TYPE, headers)

    @classmethod
    def error(cls, status: int, message: str, **extra: Any) -> Response:
        """``{"error": message}`` with ``status``."""
        return cls.json({"error": message, **extra}, status)

    @classmethod
    def text(cls, status: int, message: str) -> Response:
        """A text/plain response (IBKR answers 401 this way)."""
        return cls(status, message.encode(), TEXT_TYPE)

    @classmethod
    def html(cls, status: int, markup: str) -> Response:
        """A text/html response (the gateway's login pages)."""
        return cls(status, markup.encode(), HTML_TYPE)

    def with_headers(self, *headers: tuple[str, str]) -> Response:
        """A copy with ``headers`` appended."""
        return Response(self.status, self.body, self.content_type, self.headers + headers)


def format_utc(value: datetime) -> str:
    """``YYYYMMDD-HH:MM:SS`` of a UTC datetime (IBKR's history time format)."""
    return value.strftime("%Y%m%d-%H:%M:%S")
