"""Mapping what ``requests`` returns or raises to this package's errors, once, at the boundary.

:func:`failure` maps a ``requests`` exception (no usable answer), :func:`decode` maps an HTTP
answer to decoded JSON or raises. The table:

===============================================  ==========================================
outcome                                          error
===============================================  ==========================================
connect or read timeout (headers or body)        RequestTimeout (the timeout, what to check)
refused / reset / closed connection              GatewayConnectionError ("is it running?")
``http://`` sent to a TLS (HTTPS) port            GatewayConnectionError ("use https://")
TLS failure                                      TlsError (a NetworkError naming ``verify=``)
cut-off (chunked/length) body                    DataIntegrityError
401 (text/plain)                                 AuthenticationError (the gateway's text)
429                                              RateLimitExceeded(retry_after)
5xx                                              ApiError
3xx, or an HTML page                             ApiError "is this a gateway?"
other 4xx                                        ApiError, or the in-band mapping below
empty, non-JSON or truncated 2xx body            DataIntegrityError
in-band ``{"error": "No data."}``                DataUnavailable
in-band "no session" / "not authenticated"       AuthenticationError
in-band "Please query /accounts first"           AccountsRequired (the ApiClient handles it)
in-band "Too many requests"                      RateLimitExceeded
any other in-band ``{"error": ...}``             ApiError
===============================================  ==========================================

Every message names the method and endpoint path and quotes the gateway's own words when it
sent some, with account ids and session tokens scrubbed out (:func:`scrub`).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ..errors import (
    AccountsRequired,
    ApiError,
    AuthenticationError,
    DataIntegrityError,
    DataUnavailable,
    GatewayConnectionError,
    MarketError,
    NetworkError,
    RateLimitExceeded,
    RequestTimeout,
)
from ..wire import ACCOUNT_ID
from .retry import parse_retry_after
from .tls import TlsPolicy

__all__ = ["AccountsRequired", "Call", "answer_timed_out", "decode", "failure", "scrub"]

_TOKEN = re.compile(r"\b[0-9a-fA-F]{32,}\b")
_MESSAGE_LIMIT = 200
_AUTH_WORDS = ("no session", "not authenticated", "not logged", "unauthorized")


def scrub(text: str) -> str:
    """``text`` without account ids (``U1234567``, ``DU1234567``) or session tokens."""
    return _TOKEN.sub("<token>", ACCOUNT_ID.sub("<account>", text))


@dataclass(frozen=True)
class Call:
    """One request, as messages describe it: ``method`` and API ``path`` sent to a gateway
    whose API root is ``base_url`` and whose login page is ``login_url``."""

    method: str
    path: str
    base_url: str
    login_url: str

    @property
    def shown(self) -> str:
        """The path as messages, events and logs show it: account ids replaced."""
        return scrub(self.path)

    @property
    def where(self) -> str:
        return f"{self.method} {self.shown}"

    @property
    def url(self) -> str:
        return self.base_url + self.path


def _is_html(response: requests.Response) -> bool:
    if "html" in response.headers.get("Content-Type", "").lower():
        return True
    head = response.content[:64].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _connection_reason(exc: BaseException) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "reset" in text:
        return "connection reset"
    if "name or service not known" in text or "failed to resolve" in text:
        return "host name not found"
    if "remote end closed" in text or "remotedisconnected" in text or "aborted" in text:
        return "connection closed without an answer"
    return "connection failed"


#: First bytes of a TLS record (alert 0x15 or handshake 0x16, version 3.x): what a TLS
#: server may send back to a plain-HTTP request, which ``http.client`` then reports as the
#: status line.
_TLS_RECORD = re.compile(r"^[\x15\x16]\x03[\x00-\x04]")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (``args``, ``reason``, cause and context)."""
    found: list[BaseException] = []
    stack = [exc]
    while stack:
        current = stack.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        stack.extend(e for e in (*linked, *current.args) if isinstance(e, BaseException))
    return found


def _speaks_tls(url: str, timeout: float) -> bool:
    """True when the server at ``url``'s host and port completes a TLS handshake (no
    certificate check: this only asks which protocol the port speaks; nothing is sent)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return False
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    address = (parts.hostname, parts.port or 80)
    try:
        with (
            socket.create_connection(address, timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname),
        ):
            return True
    except (OSError, ValueError):
        return False


def _plain_http_to_tls(exc: BaseException, call: Call, timeout: float) -> str | None:
    """What happened when an ``http://`` request went to a TLS port, else None: the server
    answered a TLS record instead of HTTP, or it closed or reset the connection without a
    word and a TLS handshake with the same port succeeds (a plain-HTTP server that drops a
    connection does not speak TLS)."""
    if not call.login_url.lower().startswith("http://"):
        return None
    for error in _chain(exc):
        line = str(error.args[0]) if error.args else ""
        if isinstance(error, http.client.BadStatusLine) and _TLS_RECORD.match(line):
            return "it answered with a TLS record, not HTTP"
    reason = _connection_reason(exc)
    dropped = reason in ("connection closed without an answer", "connection reset")
    if dropped and _speaks_tls(call.login_url, min(timeout, 2.0)):
        return f"{reason}, and the port speaks TLS"
    return None


def gateway_message(response: requests.Response) -> str:
    """The gateway's own words: ``{"error": ...}`` or the start of a text body, scrubbed
    (``""`` for an HTML page or an empty body)."""
    if _is_html(response):
        return ""
    try:
        text = response.content.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:
        text = response.content.decode("utf-8", errors="replace")
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                text = data["error"]
    return scrub(" ".join(text.split())[:_MESSAGE_LIMIT])


def in_band(message: str, call: Call, status: int) -> ApiError:
    """The typed error for a gateway's ``{"error": message}`` answered with ``status``."""
    lowered = message.strip().lower()
    where, quoted = call.where, repr(message)
    if lowered.startswith("no data"):
        return DataUnavailable(
            f"{where}: the gateway has no data for this request ({quoted}); the window may fall "
            "outside trading hours or before the contract's history, or the contract has no "
            "market data",
            endpoint=call.shown,
            status=status,
            gateway_message=message,
        )
    if "/accounts first" in lowered:
        return AccountsRequired(
            f"{where}: the gateway wants GET /iserver/accounts first ({quoted}); call "
            "accounts() once per brokerage session, then retry",
            endpoint=call.shown,
            status=status,
            gateway_message=message,
        )
    if any(word in lowered for word in _AUTH_WORDS):
        return AuthenticationError(
            f"{where}: the gateway has no authenticated session ({quoted}); log in at "
            f"{call.login_url} and retry",
            endpoint=call.shown,
            status=status,
            gateway_message=message,
        )
    if "too many requests" in lowered:
        return RateLimitExceeded(
            f"{where}: the gateway refused the request for pacing ({quoted}); slow down "
            "(PacingLimits)",
            endpoint=call.shown,
            status=status,
            gateway_message=message,
        )
    return ApiError(
        f"{where}: the gateway answered with an error ({quoted}); check the request's "
        "parameters (conid, symbol, bar size, period)",
        endpoint=call.shown,
        status=status,
        gateway_message=message,
    )


def answer_timed_out(exc: requests.exceptions.RequestException) -> bool:
    """True when the request was sent and its answer did not come in time: ``requests`` raises
    ReadTimeout while waiting for the headers, and a ConnectionError around urllib3's
    ReadTimeoutError when the body stalls after them."""
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(exc, requests.exceptions.ConnectionError) and isinstance(
        cause, urllib3.exceptions.ReadTimeoutError
    )


def failure(
    exc: requests.exceptions.RequestException,
    call: Call,
    *,
    timeout: tuple[float, float],
    tls: TlsPolicy,
) -> MarketError:
    """The error for a request that got no usable answer (``timeout`` is (connect, read))."""
    where, root, path = call.where, call.login_url, call.shown
    connect, read = timeout
    if isinstance(exc, requests.exceptions.SSLError):
        return tls.failure(exc, endpoint=path)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RequestTimeout(
            f"{where}: the gateway at {root} did not accept a connection within {connect:g} s; "
            "is it running and reachable (host, port, firewall, the ips allow-list in its "
            "conf.yaml)?",
            endpoint=path,
            timeout=connect,
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return RequestTimeout(
            f"{where}: no answer from the gateway at {root} within {read:g} s; it may be "
            "overloaded, or running without a connection to IBKR (it then never answers). "
            "Check that its page opens in a browser, or raise timeout=",
            endpoint=path,
            timeout=read,
        )
    if answer_timed_out(exc):
        return RequestTimeout(
            f"{where}: the gateway at {root} began answering, then sent nothing more for "
            f"{read:g} s; it may be overloaded or its link to IBKR may have stalled. Retrying "
            "usually helps; raise timeout= if large answers are slow",
            endpoint=path,
            timeout=read,
        )
    if isinstance(
        exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)
    ):
        return DataIntegrityError(
            f"{where}: the gateway's answer was cut off or could not be decoded "
            f"({type(exc).__name__}); retrying usually helps, restart the gateway if it persists",
            endpoint=path,
        )
    tls_port = (
        _plain_http_to_tls(exc, call, connect)
        if isinstance(exc, requests.exceptions.ConnectionError)
        else None
    )
    if tls_port is not None:
        return GatewayConnectionError(
            f"{where}: {root} treated a plain-HTTP request the way an HTTPS port does "
            f"({tls_port}); the Client Portal Gateway serves HTTPS: use "
            f"https://{root[len('http://') :]}",
            endpoint=path,
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return GatewayConnectionError(
            f"{where}: {_connection_reason(exc)} at {root}: is the gateway running at {root}? "
            "Start it (bin/run.sh root/conf.yaml), log in, and retry",
            endpoint=path,
        )
    return NetworkError(
        f"{where}: the request to {root} failed ({type(exc).__name__}); check the gateway URL "
        "and that the gateway is running",
        endpoint=path,
    )


def decode(response: requests.Response, call: Call, *, rate_limit_wait: float) -> Any:
    """The decoded JSON of a good answer; raises the mapped error otherwise.

    ``rate_limit_wait`` (seconds) is named in a 429's message when it has no Retry-After.
    """
    status = response.status_code
    where, path = call.where, call.shown
    if status == 401:
        text = gateway_message(response)
        raise AuthenticationError(
            f"{where}: the gateway answered 401 ({text!r}): the brokerage session is missing, "
            f"expired or taken over by another login; log in at {call.login_url} and retry",
            endpoint=path,
            status=status,
            gateway_message=text,
        )
    if status == 429:
        raise _rate_limited(response, call, rate_limit_wait)
    if status >= 500:
        text = gateway_message(response)
        said = f": {text!r}" if text else ""
        raise ApiError(
            f"{where}: the gateway failed (HTTP {status}{said}); this is usually transient; if "
            "it persists, restart the gateway or check its link to IBKR",
            endpoint=path,
            status=status,
            gateway_message=text,
        )
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        raise ApiError(
            f"{call.login_url} answered {where} with a redirect (HTTP {status}) to "
            f"{location!r}, not the Client Portal API: is this a gateway? expected JSON at "
            f"{call.url}",
            endpoint=path,
            status=status,
        )
    if _is_html(response):
        raise ApiError(
            f"{call.login_url} answered {where} with an HTML page (HTTP {status}), not the "
            f"Client Portal API: is this a gateway? expected JSON at {call.url}",
            endpoint=path,
            status=status,
        )
    if status >= 400:
        raise _client_error(response, call)
    return _json(response, call)


def _json(response: requests.Response, call: Call) -> Any:
    content = response.content
    if not content.strip():
        raise DataIntegrityError(
            f"{call.where}: the gateway answered HTTP {response.status_code} with an empty "
            "body, expected JSON; retrying; restart the gateway if it persists",
            endpoint=call.shown,
        )
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataIntegrityError(
            f"{call.where}: the gateway answered a malformed or truncated JSON body "
            f"({len(content)} bytes: {exc}); retrying; restart the gateway if it persists",
            endpoint=call.shown,
        ) from exc
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, str) and error.strip():
            raise in_band(scrub(error), call, response.status_code)
    return data


def _rate_limited(
    response: requests.Response, call: Call, rate_limit_wait: float
) -> RateLimitExceeded:
    text = gateway_message(response)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is not None:
        wait = f"{retry_after:g} s (Retry-After)"
    else:
        wait = f"{rate_limit_wait:g} s (IBKR's penalty box lasts 10-15 minutes)"
    return RateLimitExceeded(
        f"{call.where}: the gateway refused the request for pacing (HTTP 429"
        f"{f': {text!r}' if text else ''}); wait {wait} before sending again and lower the "
        "request rate (PacingLimits); repeated violations can get the IP blocked",
        endpoint=call.shown,
        status=429,
        gateway_message=text,
        retry_after=retry_after,
    )


def _client_error(response: requests.Response, call: Call) -> ApiError:
    status = response.status_code
    text = gateway_message(response)
    if text:
        mapped = in_band(text, call, status)
        if type(mapped) is not ApiError:
            return mapped
    if status == 403:
        hint = (
            "if it says 'Access Denied', add this machine's IP to ips: allow: in the gateway's "
            "conf.yaml"
        )
    elif status == 404:
        hint = "is the URL a Client Portal Gateway, and is the gateway recent enough?"
    else:
        hint = "check the request's parameters (conid, symbol, bar size, period)"
    said = f": {text!r}" if text else ""
    return ApiError(
        f"{call.where}: the gateway rejected the request (HTTP {status}{said}); {hint}",
        endpoint=call.shown,
        status=status,
        gateway_message=text,
    )
