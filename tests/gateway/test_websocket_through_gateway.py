"""The client's WebSocket through IBKR's real gateway: client -> real gateway's ``/v1/api/ws``
-> the gateway's own socket to the simulator. Snapshots equal the snapshot endpoint's through
the same gateway, and a cut of the backend socket (``sim.drop_websockets()``) is recovered:
the gateway closes the client's side, the client reconnects and resubscribes."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.client.websocket import GatewaySocket
from backtrader_ibkr_cp.client.ws_events import SocketEvent, SocketState
from backtrader_ibkr_cp.errors import MarketError
from backtrader_ibkr_cp.models import Snapshot
from backtrader_ibkr_cp.timing import Backoff
from tests.gateway.stack import GatewayStack

AAPL = 265598
WAIT = 20.0


class Recorder:
    def __init__(self) -> None:
        self.items: queue.Queue[Snapshot | MarketError] = queue.Queue()

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self.items.put(snapshot)

    def on_error(self, error: MarketError) -> None:
        self.items.put(error)

    def snapshot(self) -> Snapshot:
        deadline = time.monotonic() + WAIT
        while True:
            item = self.items.get(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(item, Snapshot):
                return item


@pytest.fixture
def api(stack: GatewayStack) -> Iterator[ApiClient]:
    retry = RetryPolicy(backoff_factor=0.01, jitter=0.0)
    with Transport(stack.gw.url, verify=stack.gw.cert_fingerprint, retry=retry) as transport:
        yield ApiClient(transport)


def test_smd_updates_through_the_real_gateway_survive_a_backend_cut(
    stack: GatewayStack, api: ApiClient
) -> None:
    sim = stack.sim
    states: queue.Queue[SocketEvent] = queue.Queue()
    socket = GatewaySocket(api, backoff=Backoff(initial=0.2, jitter=0.0))
    socket.add_state_listener(states.put)

    def until(state: SocketState) -> SocketEvent:
        deadline = time.monotonic() + WAIT
        while (event := states.get(timeout=max(0.0, deadline - time.monotonic()))).state != state:
            pass
        return event

    listener = Recorder()
    try:
        socket.subscribe(AAPL, listener)
        until(SocketState.CONNECTED)
        assert listener.snapshot() == api.snapshot_ready([AAPL])[0]
        sim.advance(7)
        assert listener.snapshot() == api.snapshot([AAPL])[0]

        assert sim.drop_websockets() == 1  # the gateway's own socket to IBKR (the simulator)
        lost = until(SocketState.LOST)
        assert lost.error is not None
        until(SocketState.CONNECTED)
        assert listener.snapshot() == api.snapshot([AAPL])[0]  # resubscribed
        sim.advance(7)
        assert listener.snapshot() == api.snapshot([AAPL])[0]
        assert sim.stats.ws_connections == 2
    finally:
        socket.close()
    assert not socket.running
