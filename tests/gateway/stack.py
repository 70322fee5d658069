"""The stack the real-gateway tests run on: a plain-HTTP simulator behind IBKR's real
Client Portal Gateway (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

from typing import Any, NamedTuple

import requests

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits
from backtrader_ibkr_cp.simulator.realgateway import RealGateway
from tests.support.instants import TUESDAY_MORNING
from tests.support.sims import make_sim

#: IBKR's limits with the per-second and per-minute rates switched off (history concurrency
#: and the 1000-point cap stay as IBKR has them).
RELAXED_LIMITS = SimLimits(
    total_per_second=1_000_000,
    snapshot_per_second=1_000_000,
    tickle_per_second=1_000_000,
    sso_validate_per_minute=1_000_000,
)


class GatewayStack(NamedTuple):
    """A simulator and the real gateway in front of it; unpacks as ``sim, gw``."""

    sim: GatewaySimulator
    gw: RealGateway

    @property
    def api(self) -> str:
        """The API root through the real gateway: ``https://127.0.0.1:PORT/v1/api``."""
        return self.gw.url + "/v1/api"


def new_simulator(**kwargs: Any) -> GatewaySimulator:
    """A plain-HTTP simulator (:func:`~tests.support.sims.make_sim`: seed 7, a frozen clock
    on Tuesday morning, unless told otherwise), not started."""
    return make_sim(tls=False, **kwargs)


def reset_simulator(sim: GatewaySimulator) -> None:
    """Back to the shared stack's starting state: clock, limits, faults, penalty, latency,
    open brokerage session, no market-data subscriptions, zeroed stats."""
    sim.limits = RELAXED_LIMITS
    sim.clear_faults()
    sim.clear_penalty()
    sim.latency = 0.0
    sim.set_time(TUESDAY_MORNING)
    with requests.Session() as direct:  # straight to the simulator, not through the gateway
        if not sim.authenticated:
            body = {"publish": True, "compete": True}
            direct.post(sim.api_url + "/iserver/auth/ssodh/init", json=body, timeout=5)
        direct.get(sim.api_url + "/iserver/marketdata/unsubscribeall", timeout=5)
    sim.stats.reset()
