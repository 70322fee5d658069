"""A closed client leaves no connection open, even while its objects are still referenced.

Bug (found by the matrix's socket check): ``Transport.close()`` closed its requests.Session,
whose ``HTTPAdapter.close()`` calls urllib3 2's ``PoolManager.clear()``, which forgets the pools
without closing them. A pool still referenced (by a kept error's traceback, which holds the
Response; by ``AuthRecovery._last_failure``; by a log record of such an error) kept its
keep-alive sockets open (CLOSE_WAIT) until garbage collection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from matrix_cells import HISTORY, SIM_START, client_sockets

from backtrader_ibkr_cp.errors import ApiError
from backtrader_ibkr_cp.gateway import GatewayClient
from backtrader_ibkr_cp.simulator import GatewaySimulator


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=7, speed=0, start=SIM_START, penalty_seconds=5) as simulator:
        yield simulator


def test_a_closed_client_has_no_connection_open_even_if_an_error_is_kept(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    client = GatewayClient(sim.url, timeout=2.0)
    client.authenticate()
    sim.inject("http_500", 10, path=HISTORY)
    with pytest.raises(ApiError) as raised:
        client.api.history(sim.conid("AAPL"), "1min", "1h")
    assert client_sockets(sim.port) >= 1  # keep-alive connections while open
    client.close()
    kept = raised.value  # a user keeps the error to report it
    assert client_sockets(sim.port) == 0, f"sockets still open after close() ({kept})"


def test_a_closed_client_has_no_connection_open(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    client = GatewayClient(sim.url, timeout=2.0)
    client.authenticate()
    client.api.history(sim.conid("AAPL"), "1min", "1h")
    assert client_sockets(sim.port) >= 1
    client.close()
    assert client_sockets(sim.port) == 0
