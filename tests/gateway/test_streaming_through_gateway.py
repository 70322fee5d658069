"""Live bars over IBKR's real gateway's proxied WebSocket (``streaming="auto"``, the store's
default): no REST snapshot request while the socket is up, and a cut on the backend side
(between the gateway and the simulator) is covered by polling, then streams again."""

from __future__ import annotations

from typing import Any

from tests.feed.streaming_run import SNAPSHOT, assert_truth, run_live
from tests.gateway.stack import GatewayStack

BACK = "the gateway's WebSocket is back"


def test_live_bars_stream_through_the_real_gateway(private_stack: GatewayStack) -> None:
    sim = private_stack.sim  # IBKR's own pacing limits
    sim.speed = 120.0
    run = run_live(sim, live_bars=6, gateway_url=private_stack.gw.url)
    assert_truth(sim, run)
    assert sim.stats.requests.get(SNAPSHOT, 0) == 0
    assert sim.stats.ws_connections == 1 and sim.stats.rate_limited == 0
    assert run.path == "websocket"


def test_a_backend_cut_through_the_real_gateway_recovers(private_stack: GatewayStack) -> None:
    sim = private_stack.sim
    sim.speed = 120.0

    def back_on_the_socket(strategy: Any) -> bool:
        return bool(strategy.data._store.market_path == "websocket")

    run = run_live(
        sim,
        live_bars=8,
        actions={2: lambda s: s.drop_websockets()},
        until=back_on_the_socket,
        gateway_url=private_stack.gw.url,
    )
    assert_truth(sim, run)  # no bar lost or repeated across the cut
    assert sim.stats.ws_connections >= 2 and run.said(BACK)
    assert run.path == "websocket"
    assert sim.stats.rate_limited == 0
