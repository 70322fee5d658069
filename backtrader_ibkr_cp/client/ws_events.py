"""What the gateway's WebSocket tells its owner: listener protocols and state events.

See :mod:`.websocket` for :class:`~.websocket.GatewaySocket`, which calls these listeners on
its reader thread (every listener must return quickly and must not block).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import MarketError
from ..models.market import Snapshot
from .transport import Transport

__all__ = [
    "MarketListener",
    "OrderListener",
    "SocketApi",
    "SocketEvent",
    "SocketState",
    "StateListener",
    "TradeListener",
]


class SocketApi(Protocol):
    """What the socket needs of :class:`~.api.ApiClient`: its transport (TLS policy, clock,
    and ``POST /tickle`` for the session token, which ``ApiClient.tickle`` drops)."""

    @property
    def transport(self) -> Transport: ...


class MarketListener(Protocol):
    """Receives one conid's snapshots (the live runner's ``MarketListener``)."""

    def on_snapshot(self, snapshot: Snapshot) -> None: ...

    def on_error(self, error: MarketError) -> None: ...


#: Receives the order objects of one ``sor`` message: full objects the first time an order
#: is reported, later ``acct`` + ``orderId`` + the changed fields (at least once).
OrderListener = Callable[[tuple[Mapping[str, Any], ...]], None]
#: Receives the executions of one ``str`` message (``/iserver/account/trades`` objects; at
#: least once: deduplicate by ``execution_id``).
TradeListener = Callable[[tuple[Mapping[str, Any], ...]], None]


class SocketState(str, enum.Enum):
    """Where the socket stands."""

    #: The first attempt to connect.
    CONNECTING = "connecting"
    #: Logged in: subscriptions are sent and data flows.
    CONNECTED = "connected"
    #: The socket, or the brokerage session behind it, is gone (``error`` says why).
    LOST = "lost"
    #: A new attempt after a loss.
    RECONNECTING = "reconnecting"
    #: The gateway serves no WebSocket (``error`` is a ``WebSocketUnavailable``): the socket
    #: gave up; use polled snapshots.
    UNSUPPORTED = "unsupported"
    #: ``close()`` was called (or the state before ``start()``).
    CLOSED = "closed"


@dataclass(frozen=True)
class SocketEvent:
    """A change of :class:`SocketState`. ``error`` says why for ``LOST``/``UNSUPPORTED``;
    ``attempt`` counts failed attempts in a row (0 once connected); ``retry_in`` is the
    back-off before the next attempt in seconds (None: no attempt is planned, e.g. the socket
    is open but the brokerage session is gone, or the back-off gave up)."""

    state: SocketState
    error: MarketError | None = None
    attempt: int = 0
    retry_in: float | None = None


#: Receives every :class:`SocketEvent`, on the thread that made the change.
StateListener = Callable[[SocketEvent], None]
