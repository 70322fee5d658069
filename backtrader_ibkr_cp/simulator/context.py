"""Everything an endpoint needs, bundled once per simulator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .bars import BarSource
from .clock import SimClock
from .instruments import InstrumentBook
from .market import MarketModel
from .orders.desk import TradingDesk
from .session import SessionState
from .stats import SimStats

__all__ = ["Identity", "SimContext"]


@dataclass(frozen=True)
class Identity:
    """The fake user and server the simulator claims to be. ``session_token`` plays the
    ``/tickle`` session value (a secret at IBKR; random per simulator here); ``paper`` is
    ``isPaper`` of ``/iserver/accounts``."""

    account: str = "DU0000000"
    paper: bool = True
    user_id: int = 123456789
    user_name: str = "simuser1"
    server_name: str = "JifSim0001"
    server_version: str = "Build 10.25.0p, Dec 5, 2023 5:48:12 PM"
    mac: str = "00:00:5E:00:53:01"
    session_token: str = field(default_factory=lambda: secrets.token_hex(16))


@dataclass(frozen=True)
class SimContext:
    """Shared state of one simulator; each part is thread-safe on its own."""

    clock: SimClock
    instruments: InstrumentBook
    market: MarketModel
    bars: BarSource
    session: SessionState
    stats: SimStats
    trading: TradingDesk
    outside_rth_default: bool = False
    secure: bool = True
    identity: Identity = field(default_factory=Identity)
