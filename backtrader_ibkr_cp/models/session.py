"""Session endpoints' JSON: ``/iserver/auth/status`` (and ``ssodh/init``) and ``/tickle``.

Pure: no I/O. Secrets stay out: the tickle's ``session`` token (the websocket cookie value),
``userId``, ``MAC`` and ``hardware_info`` are never copied into these objects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError, AuthenticationError, DataIntegrityError

__all__ = ["AuthStatus", "TickleResult", "parse_auth_status", "parse_tickle"]

AUTH_ENDPOINT = "/iserver/auth/status"
TICKLE_ENDPOINT = "/tickle"


@dataclass(frozen=True, slots=True)
class AuthStatus:
    """The brokerage-session state.

    ``authenticated``: the brokerage session is open. ``connected``: the gateway reaches IBKR's
    backend. ``competing``: another login (TWS, mobile, another gateway) holds the session;
    ``/iserver/*`` then answers 401 until ``ssodh/init`` with ``compete: true``.
    ``message``/``fail`` are IBKR's free text (``""`` when absent).
    """

    authenticated: bool
    competing: bool
    connected: bool
    message: str = ""
    fail: str = ""
    server_name: str = ""
    server_version: str = ""

    @property
    def healthy(self) -> bool:
        """Authenticated, connected and not competing: ``/iserver/*`` calls will work."""
        return self.authenticated and self.connected and not self.competing


@dataclass(frozen=True, slots=True)
class TickleResult:
    """A ``/tickle`` answer without its secrets.

    The flags come from ``iserver.authStatus`` (all False when the gateway has no brokerage
    session to report). ``session_expires_ms`` is ``ssoExpires``: milliseconds until the SSO
    session expires, or None when absent.
    """

    authenticated: bool
    competing: bool
    connected: bool
    session_expires_ms: int | None = None

    @property
    def sso_expires_ms(self) -> int | None:
        """Alias of ``session_expires_ms`` under IBKR's name (``ssoExpires``)."""
        return self.session_expires_ms

    @property
    def healthy(self) -> bool:
        """Authenticated, connected and not competing."""
        return self.authenticated and self.connected and not self.competing


def _malformed(endpoint: str, what: str, value: object) -> DataIntegrityError:
    return DataIntegrityError(
        f"{endpoint} answered with {what} {str(value)[:100]!r}; is this a Client Portal "
        "Gateway? retry, and report it if it persists",
        endpoint=endpoint,
    )


def _object(body: Any, endpoint: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise _malformed(endpoint, f"a {type(body).__name__}", "not an object")
    error = body.get("error")
    if error not in (None, ""):
        message = str(error)
        if "no session" in message.lower():
            raise AuthenticationError(
                f"{endpoint}: the gateway has no session ({message}); log in at "
                "https://localhost:5000",
                endpoint=endpoint,
                status=200,
                gateway_message=message,
            )
        raise ApiError(
            f"{endpoint} failed: {message}; check that the gateway is running and logged in, "
            "then retry",
            endpoint=endpoint,
            status=200,
            gateway_message=message,
        )
    return body


def _flag(body: Mapping[str, Any], key: str, endpoint: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _malformed(endpoint, f"a non-boolean {key!r}", value)
    return value


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _status(body: Mapping[str, Any], endpoint: str) -> AuthStatus:
    server = body.get("serverInfo")
    server = server if isinstance(server, Mapping) else {}
    return AuthStatus(
        authenticated=_flag(body, "authenticated", endpoint),
        competing=_flag(body, "competing", endpoint),
        connected=_flag(body, "connected", endpoint),
        message=_text(body.get("message")),
        fail=_text(body.get("fail")),
        server_name=_text(server.get("serverName")),
        server_version=_text(server.get("serverVersion")),
    )


def parse_auth_status(body: Any) -> AuthStatus:
    """Parse ``/iserver/auth/status`` or ``/iserver/auth/ssodh/init``.

    Missing flags are False (IBKR's logged-out example omits ``message`` and ``fail``).
    ``{"error": ...}`` -> ApiError (AuthenticationError for "no session"); a non-object body
    or a non-boolean flag -> DataIntegrityError.
    """
    return _status(_object(body, AUTH_ENDPOINT), AUTH_ENDPOINT)


def parse_tickle(body: Any) -> TickleResult:
    """Parse ``/tickle``; the ``session`` token is dropped.

    IBKR's failure body ``{"error": "failed to process request"}`` -> ApiError.
    """
    data = _object(body, TICKLE_ENDPOINT)
    iserver = data.get("iserver")
    auth = iserver.get("authStatus") if isinstance(iserver, Mapping) else None
    status = _status(auth, TICKLE_ENDPOINT) if isinstance(auth, Mapping) else None
    expires = data.get("ssoExpires")
    if (
        isinstance(expires, bool)
        or not isinstance(expires, (int, float))
        or not math.isfinite(expires)
    ):
        expires = None
    return TickleResult(
        authenticated=status.authenticated if status else False,
        competing=status.competing if status else False,
        connected=status.connected if status else False,
        session_expires_ms=int(expires) if expires is not None else None,
    )
