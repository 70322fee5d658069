"""Fixtures for the gateway simulator's own tests: a simulator on loopback and an HTTP client.

Every test talks real HTTP(S) to the simulator. ``verify=`` is passed per request on purpose:
a ``requests.Session.verify`` value is overridden by ``REQUESTS_CA_BUNDLE`` when it is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.simulator.sim_trading import RELAXED, Trader
from tests.support.instants import TUESDAY_MORNING

__all__ = ["TUESDAY_MORNING", "Client"]  # a test module imports these from here


class Client:
    """A thin requests wrapper bound to one simulator (paths are relative to ``/v1/api``)."""

    def __init__(self, sim: GatewaySimulator) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.verify: str | bool = sim.cert_path if sim.url.startswith("https") else False

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.sim.api_url + path, verify=self.verify, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.sim.api_url + path, verify=self.verify, **kwargs)

    def history(self, timeout: float = 10, **params: Any) -> requests.Response:
        params.setdefault("conid", 265598)
        return self.get("/iserver/marketdata/history", params=params, timeout=timeout)

    def snapshot(self, conids: str, fields: str) -> requests.Response:
        return self.get("/iserver/marketdata/snapshot", params={"conids": conids, "fields": fields})

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """A simulator with a frozen clock on a Tuesday morning (seed 7), HTTPS."""
    return sim_factory(seed=7, speed=0, start=TUESDAY_MORNING)


@pytest.fixture
def client(sim: GatewaySimulator) -> Iterator[Client]:
    """An HTTP client for ``sim``."""
    http = Client(sim)
    yield http
    http.close()


@pytest.fixture
def client_for() -> Iterator[Callable[[GatewaySimulator], Client]]:
    """A factory of HTTP clients for simulators a test starts itself (closed at teardown)."""
    clients: list[Client] = []

    def make(simulator: GatewaySimulator) -> Client:
        clients.append(Client(simulator))
        return clients[-1]

    yield make
    for http in clients:
        http.close()


@pytest.fixture
def trading_sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    """A simulator for order tests: frozen Tuesday morning, pacing limits out of the way."""
    return sim_factory(seed=7, speed=0, start=TUESDAY_MORNING, limits=RELAXED)


@pytest.fixture
def trader(trading_sim: GatewaySimulator) -> Iterator[Trader]:
    """A :class:`~tests.simulator.sim_trading.Trader` of ``trading_sim`` (its
    ``/iserver/accounts`` queried)."""
    client = Trader(trading_sim)
    yield client
    client.close()
