"""Open one WebSocket to the gateway: TCP, TLS by the client's policy, the handshake.

TLS follows :class:`~.tls.TlsPolicy`, the same rules as every HTTP request of the client: a
loopback gateway without CA verification by default, CA verification (a bundle path or the
system store) otherwise, or a pinned SHA-256 fingerprint of the leaf certificate. The TCP and
TLS connection is made here and handed to ``websockets``, which runs the WebSocket protocol
over it (its URI then says ``ws://``: the request line carries only the path). Proxies from
the environment are not used: IBKR's gateway runs on the machine that calls it.

Every failure is mapped once to the package's errors (chained with ``raise ... from``):
:class:`~backtrader_ibkr_cp.errors.TlsError`, ``GatewayConnectionError``, ``RequestTimeout``,
``AuthenticationError`` (401/403), ``RateLimitExceeded`` (429), ``ApiError`` (5xx) and
:class:`~backtrader_ibkr_cp.errors.WebSocketUnavailable` (the gateway answered the upgrade
with anything else: it does not serve a WebSocket there).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
from typing import cast
from urllib.parse import urlsplit

import requests.utils
from websockets.exceptions import (
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)
from websockets.sync.client import ClientConnection, connect

from ..errors import (
    ApiError,
    AuthenticationError,
    GatewayConnectionError,
    MarketError,
    RateLimitExceeded,
    RequestTimeout,
    TlsError,
    WebSocketUnavailable,
)
from .tls import TlsPolicy
from .ws_tls import LockedTls

__all__ = ["MAX_MESSAGE_BYTES", "WS_ENDPOINT", "open_websocket", "ssl_context", "websocket_url"]

#: The WebSocket below the API root.
WS_ENDPOINT = "/ws"
#: The largest message accepted (a ``sor``/``str`` replay of a busy week is large).
MAX_MESSAGE_BYTES = 16 << 20


def websocket_url(policy: TlsPolicy) -> str:
    """``wss://host:port/v1/api/ws`` (``ws://`` for an ``http://`` gateway)."""
    base = policy.base_url
    return ("wss" + base[5:] if base.startswith("https:") else "ws" + base[4:]) + WS_ENDPOINT


def ssl_context(policy: TlsPolicy) -> ssl.SSLContext | None:
    """The TLS context the policy asks for (None for an ``http://`` gateway)."""
    if not policy.base_url.startswith("https:"):
        return None
    if policy.verify is False:  # unverified loopback, verify=False, or a pinned fingerprint
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(policy.verify, str):
        if os.path.isdir(policy.verify):
            return ssl.create_default_context(capath=policy.verify)
        return ssl.create_default_context(cafile=policy.verify)
    bundle = (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )
    return ssl.create_default_context(cafile=bundle)


def _colon_hex(digest: str) -> str:
    upper = digest.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


def _tls(policy: TlsPolicy, raw: socket.socket, host: str, timeout: float) -> ssl.SSLSocket:
    context = ssl_context(policy)
    assert context is not None
    raw.settimeout(timeout)
    try:
        wrapped = context.wrap_socket(raw, server_hostname=host)
    except (ssl.SSLError, ssl.CertificateError) as exc:
        raw.close()
        raise policy.failure(exc, endpoint=WS_ENDPOINT) from exc
    except TimeoutError as exc:
        raw.close()
        raise RequestTimeout(
            f"no TLS handshake with the gateway's WebSocket at {policy.login_url} within "
            f"{timeout:g} s; it is retried",
            endpoint=WS_ENDPOINT,
            timeout=timeout,
        ) from exc
    except OSError as exc:
        raw.close()
        raise GatewayConnectionError(
            f"the gateway at {policy.login_url} broke the connection during the TLS handshake "
            f"({exc.strerror or exc}); it is retried",
            endpoint=WS_ENDPOINT,
        ) from exc
    if policy.fingerprint is not None:
        der = wrapped.getpeercert(binary_form=True) or b""
        seen = hashlib.sha256(der).hexdigest()
        if seen != policy.fingerprint:
            wrapped.close()
            raise TlsError(
                f"TLS certificate fingerprint mismatch for {policy.login_url} ({WS_ENDPOINT}): "
                f"the gateway presented sha256:{_colon_hex(seen)}, but verify= pins "
                f"sha256:{_colon_hex(policy.fingerprint)}. If this is your gateway (it may "
                f"have made a new certificate), pin the new one with "
                f"verify='sha256:{_colon_hex(seen)}'; otherwise do not connect",
                endpoint=WS_ENDPOINT,
                fingerprint_seen=f"sha256:{_colon_hex(seen)}",
            )
    return wrapped


def _refused(exc: InvalidStatus, where: str) -> MarketError:
    response = exc.response
    status = response.status_code
    text = response.body.decode("utf-8", "replace").strip()[:200] if response.body else ""
    if status in (401, 403):
        return AuthenticationError(
            f"the gateway refused the WebSocket at {where} with HTTP {status} "
            f"({text or 'no reason'}); log in to the gateway, then it is retried",
            endpoint=WS_ENDPOINT,
            status=status,
            gateway_message=text,
        )
    if status == 429:
        retry_after = response.headers.get("Retry-After", "")
        return RateLimitExceeded(
            f"the gateway rate-limited the WebSocket upgrade at {where} (HTTP 429); it is "
            "retried after the back-off",
            endpoint=WS_ENDPOINT,
            gateway_message=text,
            retry_after=float(retry_after) if retry_after.isdigit() else None,
        )
    if 500 <= status < 600:
        return ApiError(
            f"the gateway answered the WebSocket upgrade at {where} with HTTP {status} "
            f"({text or 'no reason'}); it is retried after the back-off",
            endpoint=WS_ENDPOINT,
            status=status,
            gateway_message=text,
        )
    return WebSocketUnavailable(
        f"the gateway at {where} answered the WebSocket upgrade with HTTP {status} "
        f"({text or 'no reason'}): it does not serve a WebSocket there; use polled snapshots "
        "(streaming='poll')",
        endpoint=WS_ENDPOINT,
        status=status,
        gateway_message=text,
    )


def open_websocket(
    policy: TlsPolicy,
    cookie: str,
    *,
    timeout: float,
    close_timeout: float,
) -> ClientConnection:
    """A connected, handshaken WebSocket to the gateway of ``policy`` with ``cookie`` (the
    ``Cookie`` header value). ``timeout`` bounds the TCP connect, the TLS handshake and the
    WebSocket handshake, each (seconds). Raises the errors listed in the module docstring."""
    url = websocket_url(policy)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    where = f"{policy.login_url}/v1/api{WS_ENDPOINT}"
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as exc:
        raise RequestTimeout(
            f"no TCP connection to the gateway's WebSocket at {where} within {timeout:g} s; "
            "is the gateway running?",
            endpoint=WS_ENDPOINT,
            timeout=timeout,
        ) from exc
    except OSError as exc:
        raise GatewayConnectionError(
            f"could not connect to the gateway's WebSocket at {where} ({exc.strerror or exc}); "
            "start the gateway (or check the URL); it is retried",
            endpoint=WS_ENDPOINT,
        ) from exc
    sock = raw
    if parts.scheme == "wss":
        # websockets reads on its own thread while others send: one thread at a time in TLS.
        sock = cast(socket.socket, LockedTls(_tls(policy, raw, host, timeout)))
    plain = "ws://" + parts.netloc + parts.path  # TLS is already on: websockets speaks over it
    try:
        sock.settimeout(None)
        return connect(
            plain,
            sock=sock,
            additional_headers={"Cookie": cookie},
            open_timeout=timeout,
            ping_interval=None,
            close_timeout=close_timeout,
            max_size=MAX_MESSAGE_BYTES,
            proxy=None,
            compression=None,
        )
    except InvalidStatus as exc:
        raise _refused(exc, where) from exc
    except TimeoutError as exc:
        raise RequestTimeout(
            f"the gateway did not answer the WebSocket upgrade at {where} within {timeout:g} s; "
            "it is retried",
            endpoint=WS_ENDPOINT,
            timeout=timeout,
        ) from exc
    except (InvalidHandshake, InvalidURI) as exc:
        with contextlib.suppress(OSError):
            sock.close()
        if isinstance(exc, InvalidMessage):  # no readable answer: the connection broke
            raise GatewayConnectionError(
                f"the gateway closed the connection during the WebSocket upgrade at {where}; "
                "it is retried",
                endpoint=WS_ENDPOINT,
            ) from exc
        raise WebSocketUnavailable(
            f"the gateway at {where} did not accept a WebSocket ({exc}); use polled snapshots "
            "(streaming='poll')",
            endpoint=WS_ENDPOINT,
        ) from exc
    except (OSError, WebSocketException) as exc:
        with contextlib.suppress(OSError):
            sock.close()
        raise GatewayConnectionError(
            f"the WebSocket upgrade at {where} failed ({type(exc).__name__}: {exc}); it is retried",
            endpoint=WS_ENDPOINT,
        ) from exc
