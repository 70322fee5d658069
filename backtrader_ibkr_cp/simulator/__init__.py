"""A faithful simulator of IBKR's Client Portal Gateway and IBKR's backend, on loopback.

It is the other side of the wire: it imports nothing of ``backtrader_ibkr_cp`` (only the
standard library, ``cryptography`` and ``websockets``). Typical use::

    from datetime import datetime, timezone
    from backtrader_ibkr_cp.simulator import GatewaySimulator

    start = datetime(2024, 3, 4, 14, 30, tzinfo=timezone.utc)
    with GatewaySimulator(seed=1, speed=60, start=start) as sim:
        requests.get(sim.api_url + "/iserver/auth/status", verify=sim.cert_path)
        bars = sim.truth("AAPL", "5min")        # what a correct client must end up with

Modules: :mod:`.calendar` (sessions, bar buckets), :mod:`.periods` (history periods),
:mod:`.market` (seeded one-minute bars), :mod:`.bars` (aggregation, ground truth),
:mod:`.quotes` (intra-minute path), :mod:`.instruments`, :mod:`.session`, :mod:`.pacing`,
:mod:`.faults`, :mod:`.stats`, :mod:`.handlers` / :mod:`.history` / :mod:`.snapshot`
(endpoints), :mod:`.orders` (IBKR's order engine, one account, the order and portfolio
endpoints), :mod:`.gateway` (request pipeline), :mod:`.server` (HTTP/TLS), :mod:`.tls`,
:mod:`.ws_hub` (the WebSocket ``/v1/api/ws``, with :mod:`.ws_upgrade`, :mod:`.ws_session` and
:mod:`.ws_wire`).
Run it standalone with ``python -m backtrader_ibkr_cp.simulator --port 5000``.
"""

from __future__ import annotations

from .bars import SimBar
from .facade import GatewaySimulator
from .faults import FAULT_KINDS
from .instruments import SimInstrument
from .orders.state import SimAccount, SimExecution, SimOrder
from .pacing import SimLimits
from .stats import SimStats

__all__ = [
    "FAULT_KINDS",
    "GatewaySimulator",
    "SimAccount",
    "SimBar",
    "SimExecution",
    "SimInstrument",
    "SimLimits",
    "SimOrder",
    "SimStats",
]
