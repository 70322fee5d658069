"""The gateway client layer: TLS, pacing, retry, transport, endpoints and session keep-alive.

Build it bottom-up (``GatewayClient`` does this for users)::

    pacer = Pacer(PacingLimits())
    transport = Transport("https://localhost:5000", pacer=pacer, retry=RetryPolicy())
    api = ApiClient(transport)
    keeper = SessionKeeper(api, tickle_interval=60.0)
    keeper.start()
    ...
    keeper.close()
    transport.close()
"""

from __future__ import annotations

from .api import ApiClient
from .pacing import Pacer, PacingLimits
from .retry import RetryPolicy
from .session import AuthRecovery, SessionKeeper
from .tls import InsecureGatewayWarning, TlsError, TlsPolicy
from .transport import AccountsRequired, ClientEvent, Transport, TransportClosed

__all__ = [
    "AccountsRequired",
    "ApiClient",
    "AuthRecovery",
    "ClientEvent",
    "InsecureGatewayWarning",
    "Pacer",
    "PacingLimits",
    "RetryPolicy",
    "SessionKeeper",
    "TlsError",
    "TlsPolicy",
    "Transport",
    "TransportClosed",
]
