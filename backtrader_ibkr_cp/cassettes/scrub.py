"""Secret scrubbing for cassettes: applied to every interaction BEFORE it is kept or written.

What is removed or replaced (interfaces.md, "Secrets"):

- request headers: every header except ``Content-Type`` is dropped, so ``Cookie``,
  ``Authorization`` and anything else a proxy adds never reach the cassette;
- response headers: only ``Content-Type``, ``Content-Length``, ``Date`` (the gateway's clock),
  ``Retry-After`` and ``Location`` are kept; ``Set-Cookie`` and the rest are dropped;
- the scheme, host and port of every URI become ``https://localhost:5000`` (not matched, and a
  fixed origin keeps re-recorded cassettes identical);
- account ids (``U1234567``, ``DU1234567``: a ``U`` or ``DU`` and five or more digits) are
  replaced by :data:`ACCOUNT_PLACEHOLDER` in URIs, header values and bodies;
- the broker's per-run ``cOID`` prefixes (process, run and time) become
  :data:`~backtrader_ibkr_cp.wire.COID_PLACEHOLDER` (``btRUN-<ref>``) wherever they appear;
- JSON bodies: the values of identifying keys (:data:`SECRET_KEYS`: the ``/tickle`` ``session``
  token, ``sessionId``, user ids and names, IP and MAC addresses) are replaced by placeholders
  of the same JSON type (strings -> ``"REDACTED"``, numbers -> ``0``);
- every secret value seen so far (cookie values, session tokens) is also replaced wherever it
  appears later as plain text, in any body, header or URI.

The scrubbing is idempotent (scrubbing a scrubbed request changes nothing), which vcrpy relies
on: it applies the request hook to live requests before matching them against recorded ones.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..wire import ACCOUNT_ID, COID_PLACEHOLDER, COID_PREFIX

__all__ = [
    "ACCOUNT_PLACEHOLDER",
    "ACCOUNT_RE",
    "SECRET_KEYS",
    "SECRET_PLACEHOLDER",
    "Scrubber",
    "scrub_text",
]

#: What an account id becomes. Deliberately matches neither ``U\d+`` nor ``DU\d+``.
ACCOUNT_PLACEHOLDER = "ACCT_REDACTED"
#: What a secret string value becomes.
SECRET_PLACEHOLDER = "REDACTED"
#: IBKR account ids (individual, advisor and broker, live and paper): the package's one
#: pattern, :data:`backtrader_ibkr_cp.wire.ACCOUNT_ID`.
ACCOUNT_RE = ACCOUNT_ID
#: JSON keys (compared case-insensitively) whose values identify the user or the session.
SECRET_KEYS = frozenset(
    {
        "session",
        "sessionid",
        "userid",
        "user_id",
        "username",
        "user_name",
        "paper_user_name",
        "credential",
        "ip",
        "mac",
        "hardware_info",
    }
)
#: Request headers kept in a cassette (case-insensitive); everything else is dropped.
KEEP_REQUEST_HEADERS = frozenset({"content-type"})
#: Response headers kept in a cassette (case-insensitive); everything else is dropped.
KEEP_RESPONSE_HEADERS = frozenset(
    {"content-type", "content-length", "date", "retry-after", "location"}
)
#: The host:port every recorded URI is rewritten to (the real one is neither matched nor kept).
RECORDED_ORIGIN = "localhost:5000"
#: Secret values shorter than this are not replaced as substrings (too many false hits).
_MIN_SECRET_LENGTH = 12


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with account ids, the broker's per-run cOID prefixes and each of ``secrets``
    (plain values) replaced."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, SECRET_PLACEHOLDER)
    text = COID_PREFIX.sub(COID_PLACEHOLDER, text)
    return ACCOUNT_RE.sub(ACCOUNT_PLACEHOLDER, text)


def _placeholder(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return 0
    if isinstance(value, str):
        return SECRET_PLACEHOLDER
    return None


class Scrubber:
    """Removes secrets from vcrpy requests and responses; remembers secrets it has seen.

    One instance serves one cassette. Thread-safe (history fetches record concurrently).
    The hooks take and return vcrpy's objects: :meth:`request` a ``vcr.request.Request``
    (already a copy: vcrpy deep-copies before calling it), :meth:`response` the response dict
    ``{"status": {...}, "headers": {name: [values]}, "body": {"string": bytes}}`` (also a copy).
    """

    def __init__(self, extra_secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = {s for s in extra_secrets if s}

    @property
    def secrets(self) -> frozenset[str]:
        """The secret values learned so far (never log these)."""
        with self._lock:
            return frozenset(self._secrets)

    def learn(self, value: str) -> None:
        """Treat ``value`` as a secret from now on (replaced wherever it appears)."""
        if value and len(value) >= _MIN_SECRET_LENGTH:
            with self._lock:
                self._secrets.add(value)

    # -- vcrpy hooks ---------------------------------------------------------------------

    def request(self, request: Any) -> Any:
        """``before_record_request``: scrub the URI, drop headers, scrub the body."""
        secrets = self.secrets
        request.uri = scrub_text(_neutral_origin(request.uri), secrets)
        request.headers = {
            k: v for k, v in request.headers.items() if k.lower() in KEEP_REQUEST_HEADERS
        }
        body = request.body
        if isinstance(body, (bytes, bytearray)) and body:
            request.body = self._scrub_body(bytes(body), secrets)
        elif isinstance(body, str) and body:
            request.body = self._scrub_body(body.encode("utf-8"), secrets)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        """``before_record_response``: learn and drop cookies, keep few headers, scrub the body."""
        headers: dict[str, list[str]] = response.get("headers") or {}
        for name, values in headers.items():
            if name.lower() == "set-cookie":
                for value in values:
                    self._learn_cookie(value)
        body = (response.get("body") or {}).get("string")
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes) and body:
            self._learn_from_json(body)
        secrets = self.secrets
        kept: dict[str, list[str]] = {}
        for name, values in sorted(headers.items()):
            if name.lower() in KEEP_RESPONSE_HEADERS:
                kept[name] = [scrub_text(str(v), secrets) for v in values]
        new_body = self._scrub_body(body, secrets) if isinstance(body, bytes) else b""
        _set_header(kept, "Content-Length", str(len(new_body)))
        return {
            "status": copy.deepcopy(response.get("status", {})),
            "headers": kept,
            "body": {"string": new_body},
        }

    def saved_interaction(self, request: Any, response: dict[str, Any]) -> tuple[Any, Any]:
        """``before_save_interaction``: a last pass with every secret learned during the run
        (one seen late is removed from interactions recorded before it was seen)."""
        return self.request(request), self.response(response)

    # -- internals -----------------------------------------------------------------------

    def _learn_cookie(self, header: str) -> None:
        first = header.split(";", 1)[0]
        if "=" in first:
            self.learn(first.split("=", 1)[1].strip().strip('"'))

    def _learn_from_json(self, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        for value in _secret_values(data):
            self.learn(value)

    def _scrub_body(self, body: bytes, secrets: frozenset[str]) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
            is_json = False
        else:
            is_json = True
        if is_json:
            cleaned = _scrub_json(data, secrets)
            if cleaned != data:
                return json.dumps(cleaned, separators=(",", ":")).encode("utf-8")
            return body
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return body
        cleaned_text = scrub_text(text, secrets)
        return body if cleaned_text == text else cleaned_text.encode("utf-8")


def _neutral_origin(uri: str) -> str:
    """``uri`` with scheme, host and port replaced by :data:`RECORDED_ORIGIN` (they are not
    matched, and a fixed origin keeps cassettes identical between recordings)."""
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        return uri
    return urlunsplit(("https", RECORDED_ORIGIN, parts.path, parts.query, parts.fragment))


def _set_header(headers: dict[str, list[str]], name: str, value: str) -> None:
    for key in list(headers):
        if key.lower() == name.lower():
            del headers[key]
    headers[name] = [value]


def _secret_values(data: Any) -> Iterable[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and key.lower() in SECRET_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _secret_values(value)
    elif isinstance(data, list):
        for item in data:
            yield from _secret_values(item)


def _scrub_json(data: Any, secrets: frozenset[str]) -> Any:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            new_key = scrub_text(key, secrets) if isinstance(key, str) else key
            if isinstance(key, str) and key.lower() in SECRET_KEYS:
                out[new_key] = _placeholder(value)
            else:
                out[new_key] = _scrub_json(value, secrets)
        return out
    if isinstance(data, list):
        return [_scrub_json(item, secrets) for item in data]
    if isinstance(data, str):
        return scrub_text(data, secrets)
    return data
