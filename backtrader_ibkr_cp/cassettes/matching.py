"""How a live request is matched against recorded ones.

A request matches when its method, path, query and (for requests with a body) JSON body
match. Scheme, host and port are ignored: the simulator's port changes on every run, and a
cassette recorded through ``https://localhost:5000`` replays for ``http://127.0.0.1:8123``.

- path: ``//`` collapsed, a trailing ``/`` ignored;
- query: the parameters as a sorted list of ``(name, value)`` pairs (so the order in the URL
  does not matter; a repeated parameter must repeat);
- body: compared as parsed JSON when both sides are JSON, else byte for byte; a request without
  a body matches one with an empty body.

vcrpy matchers raise AssertionError (with a readable difference) on mismatch.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "MATCH_ON",
    "REPEATABLE_PATHS",
    "body_matcher",
    "describe_request",
    "is_repeatable",
    "normalize_path",
    "path_matcher",
    "query_matcher",
]

#: Session endpoints answered the same way every time: on replay they may be requested any
#: number of times (the recorded answers in order, then the last one again).
REPEATABLE_PATHS: tuple[str, ...] = (
    "/tickle",
    "/iserver/auth/status",
    "/iserver/accounts",
    "/sso/validate",
)

#: vcrpy matcher names registered by :mod:`.cassette`, in the order they are tried.
MATCH_ON: tuple[str, ...] = ("method", "ibkr_path", "ibkr_query", "ibkr_body")

_SLASHES = re.compile(r"/{2,}")


def normalize_path(path: str) -> str:
    """``path`` with repeated slashes collapsed and no trailing slash (``/`` stays ``/``)."""
    path = _SLASHES.sub("/", path or "/")
    return path.rstrip("/") or "/"


def _query(request: Any) -> list[tuple[str, str]]:
    return sorted(parse_qsl(urlsplit(request.uri).query, keep_blank_values=True))


def is_repeatable(path: str, repeatable: tuple[str, ...] = REPEATABLE_PATHS) -> bool:
    """True when ``path`` (with or without the ``/v1/api`` root) is one of ``repeatable``."""
    normalized = normalize_path(path)
    return any(normalized == p or normalized.endswith(p) for p in repeatable)


def path_matcher(r1: Any, r2: Any) -> None:
    p1, p2 = normalize_path(r1.path), normalize_path(r2.path)
    if p1 != p2:
        raise AssertionError(f"path {p1} != {p2}")


def query_matcher(r1: Any, r2: Any) -> None:
    q1, q2 = _query(r1), _query(r2)
    if q1 != q2:
        raise AssertionError(f"query {q1} != {q2}")


def _body_bytes(request: Any) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return b"".join(body)


def _parsed(body: bytes) -> Any:
    try:
        return ("json", json.loads(body))
    except ValueError:
        return ("bytes", body)


def body_matcher(r1: Any, r2: Any) -> None:
    b1, b2 = _body_bytes(r1), _body_bytes(r2)
    if b1 == b2:
        return
    if not b1.strip() and not b2.strip():
        return
    if _parsed(b1) != _parsed(b2):
        raise AssertionError(f"body {b1[:200]!r} != {b2[:200]!r}")


def describe_request(method: str, uri: str) -> str:
    """``"GET /v1/api/iserver/marketdata/history?bar=5min&conid=265598"`` (sorted query, no
    scheme/host/port) for messages."""
    parts = urlsplit(uri)
    query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return f"{method} {normalize_path(parts.path)}{'?' + query if query else ''}"
