"""Live bars over the gateway's WebSocket (``streaming="auto"``, the default), with polled
snapshots covering every outage: against the simulator's socket, every run delivers exactly
the simulator's bars, and no snapshot is polled while the socket is healthy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.feed.streaming_run import SNAPSHOT, assert_truth, run_live
from tests.support.instants import TUESDAY_MORNING

STREAMING = "market data streams over the gateway's WebSocket"
DOWN = "the gateway's WebSocket is down"
BACK = "the gateway's WebSocket is back"


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=3, speed=120.0, start=TUESDAY_MORNING, penalty_seconds=5) as s:
        yield s


@pytest.fixture
def quick_socket(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The store's socket notices silence within 1 s and retries after 0.1 s."""
    options = {"silence_timeout": 1.0, "heartbeat_interval": 0.3}
    monkeypatch.setattr(IBKRCPStore, "websocket_options", options)
    return options


def snapshots(sim: GatewaySimulator) -> int:
    return int(sim.stats.requests.get(SNAPSHOT, 0))


def test_live_bars_stream_over_the_socket_without_one_snapshot_request(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    run = run_live(sim)
    assert_truth(sim, run)
    assert run.statuses["AAPL"][:3] == ["CONNECTED", "DELAYED", "LIVE"]
    assert snapshots(sim) == 0 and sim.stats.rate_limited == 0
    assert sim.stats.ws_connections == 1 and sim.stats.ws_messages["smd"] > 0
    assert run.said(STREAMING)


def test_ten_feeds_share_one_socket(no_thread_leak: None, sim: GatewaySimulator) -> None:
    symbols = ("AAPL", "MSFT", "IBM", "AMZN", "GOOGL", "META", "TSLA", "NVDA", "SPY", "QQQ")
    run = run_live(sim, symbols, live_bars=3)
    assert sorted(run.rows) == sorted(symbols)
    assert_truth(sim, run)
    assert snapshots(sim) == 0 and sim.stats.ws_connections == 1


def test_dropped_sockets_are_covered_by_polling_then_the_stream_returns(
    no_thread_leak: None, sim: GatewaySimulator
) -> None:
    run = run_live(
        sim,
        live_bars=8,
        actions={2: GatewaySimulator.drop_websockets, 5: GatewaySimulator.drop_websockets},
    )
    assert_truth(sim, run)  # no bar lost or repeated across two cuts
    assert sim.stats.ws_connections == 3  # reconnected after each cut
    down = [m for m, _ in run.messages if DOWN in m]
    back = [m for m, _ in run.messages if BACK in m]
    assert len(down) == len(back) == 2
    assert run.snapshots_when(BACK) == snapshots(sim)  # no polling once the socket is back
    assert run.path == "websocket"


def test_a_silent_socket_is_cut_and_reopened(
    no_thread_leak: None, sim: GatewaySimulator, quick_socket: dict[str, Any]
) -> None:
    run = run_live(sim, live_bars=6, actions={2: GatewaySimulator.silence_websockets})
    assert_truth(sim, run)
    assert sim.stats.ws_connections == 2
    assert run.said(DOWN) and run.said(BACK)


def test_expired_subscriptions_are_renewed(
    no_thread_leak: None, sim: GatewaySimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IBKR ends a market-data subscription after a while: the store's socket subscribes
    again before that (here every second), so the updates never stop."""
    monkeypatch.setattr(IBKRCPStore, "websocket_options", {"refresh_interval": 1.0})
    seen: dict[str, int] = {}

    def expire(s: GatewaySimulator) -> None:
        s.age_websocket_subscriptions(10_000.0)
        seen["smd"] = s.stats.ws_messages["smd"]

    run = run_live(sim, live_bars=6, actions={2: expire})
    assert_truth(sim, run)
    assert sim.stats.ws_messages["smd"] > seen["smd"]  # updates flow again
    assert snapshots(sim) == 0 and sim.stats.ws_connections == 1


@pytest.mark.parametrize("loss", ["expire_session", "compete"])
def test_a_lost_brokerage_session_while_streaming(
    no_thread_leak: None, sim: GatewaySimulator, loss: str
) -> None:
    run = run_live(sim, live_bars=6, actions={2: getattr(GatewaySimulator, loss)})
    assert_truth(sim, run)  # the gap is backfilled, nothing repeated
    assert "CONNBROKEN" in run.statuses["AAPL"] and run.statuses["AAPL"][-1] == "LIVE"
    assert run.path == "websocket"  # back on the socket


def test_a_gateway_without_a_socket_is_polled(no_thread_leak: None) -> None:
    with GatewaySimulator(seed=3, speed=120.0, start=TUESDAY_MORNING, websocket=False) as sim:
        run = run_live(sim, live_bars=4)
        assert_truth(sim, run)
        assert snapshots(sim) > 0
        # The refused upgrade was paced like any request: polling right after it broke
        # no limit (it used to: 10 requests in the first second, then a 10-minute penalty).
        assert sim.stats.rate_limited == 0
    assert run.said("the gateway serves no WebSocket")


def test_streaming_websocket_refuses_a_gateway_without_one(no_thread_leak: None) -> None:
    with GatewaySimulator(seed=3, speed=120.0, start=TUESDAY_MORNING, websocket=False) as sim:
        run = run_live(sim, live_bars=4, streaming="websocket")
        assert snapshots(sim) == 0
    assert run.statuses["AAPL"][-1] == "DISCONNECTED"
    assert run.said("streaming='auto'") and run.path == "none"


def test_a_quiet_instrument_on_a_healthy_socket_is_not_taken_for_a_stall(
    no_thread_leak: None,
) -> None:
    """A halted instrument gets no update over the socket; the socket's heartbeats keep
    its feed alive (a stall would call its connection broken and reconnect it)."""
    with GatewaySimulator(seed=3, speed=120.0, start=TUESDAY_MORNING, ws_heartbeat=0.2) as sim:
        sim.set_halted(sim.conid("MSFT"))
        run = run_live(sim, ("AAPL", "MSFT"), live_bars=8, count=("AAPL",), stall_timeout=1.0)
    assert "LIVE" in run.statuses["MSFT"]
    assert "CONNBROKEN" not in run.statuses["MSFT"], run.messages
    assert not run.said("no market data for")
