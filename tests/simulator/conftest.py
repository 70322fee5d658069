"""Fixtures for the gateway simulator's own tests: a simulator on loopback and an HTTP client.

Every test talks real HTTP(S) to the simulator. ``verify=`` is passed per request on purpose:
a ``requests.Session.verify`` value is overridden by ``REQUESTS_CA_BUNDLE`` when it is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from sim_trading import RELAXED, TUESDAY, Trader

from backtrader_ibkr_cp.simulator import GatewaySimulator

#: Tuesday 2024-03-05 10:00:30 New York (EST, UTC-5): regular hours, 30 s into a minute.
TUESDAY_MORNING = datetime(2024, 3, 5, 15, 0, 30, tzinfo=timezone.utc)


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
def sim() -> Iterator[GatewaySimulator]:
    """A simulator with a frozen clock on a Tuesday morning, HTTPS."""
    with GatewaySimulator(seed=7, speed=0, start=TUESDAY_MORNING) as simulator:
        yield simulator


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
def trading_sim() -> Iterator[GatewaySimulator]:
    """A simulator for order tests: frozen Tuesday morning, pacing limits out of the way."""
    with GatewaySimulator(seed=7, speed=0, start=TUESDAY, limits=RELAXED) as simulator:
        yield simulator


@pytest.fixture
def trader(trading_sim: GatewaySimulator) -> Iterator[Trader]:
    """A :class:`sim_trading.Trader` of ``trading_sim`` (``/iserver/accounts`` queried)."""
    client = Trader(trading_sim)
    yield client
    client.close()
