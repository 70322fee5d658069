"""The fault matrix of the WebSocket: every way the socket can fail, during the backfill and
while live, with one and three feeds on it.

Kinds: ``drop`` (the socket is cut, no close frame), ``silence`` (it stays open and sends
nothing: the client must notice), and every fault the simulator can put on the upgrade
(``/ws``), each injected and then the open socket cut, so the reconnection meets it. Every
cell must deliver exactly the simulator's bars on every feed (polling covers the outage, the
feed backfills what it missed) and end back on the socket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.feed.streaming_run import assert_truth, run_live
from tests.support.instants import TUESDAY_MORNING

pytestmark = pytest.mark.slow

UPGRADE_FAULTS = (
    "http_500",
    "http_503",
    "http_429",
    "reset",
    "timeout",
    "latency",
    "competing",
    "daily_reset",
)
KINDS = ("drop", "silence", *UPGRADE_FAULTS)
#: When the fault lands: at the first bar (the feeds are backfilling) or after two live bars.
PHASES = {"backfill": 0, "live": 2}
SYMBOLS = {1: ("AAPL",), 3: ("AAPL", "MSFT", "IBM")}
#: Seconds the ``timeout`` and ``latency`` faults hold the upgrade.
HOLD = {"timeout": 2.0, "latency": 0.5}


@pytest.fixture(autouse=True)
def quick_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The socket notices silence within 1 s and gives up an upgrade after 1 s."""
    options = {"silence_timeout": 1.0, "heartbeat_interval": 0.3, "open_timeout": 1.0}
    monkeypatch.setattr(IBKRCPStore, "websocket_options", options)
    yield


def fault(kind: str) -> Callable[[GatewaySimulator], None]:
    def inject(sim: GatewaySimulator) -> None:
        if kind == "drop":
            sim.drop_websockets()
        elif kind == "silence":
            sim.silence_websockets()
        else:
            sim.inject(kind, 1, path="/ws", seconds=HOLD.get(kind))
            sim.drop_websockets()

    return inject


def back_on_the_socket(strategy: Any) -> bool:
    """Every feed is LIVE, on the socket (the run goes on until then, or its time is up)."""
    statuses = strategy.p.run.statuses
    live = all(statuses.get(d._name, [""])[-1] == "LIVE" for d in strategy.datas)
    return live and strategy.data._store.market_path == "websocket"


@pytest.mark.parametrize("feeds", sorted(SYMBOLS))
@pytest.mark.parametrize("phase", sorted(PHASES))
@pytest.mark.parametrize("kind", KINDS)
def test_socket_fault_cell(no_thread_leak: None, kind: str, phase: str, feeds: int) -> None:
    with GatewaySimulator(seed=5, speed=120.0, start=TUESDAY_MORNING, penalty_seconds=5) as sim:
        run = run_live(
            sim,
            SYMBOLS[feeds],
            live_bars=8,
            actions={PHASES[phase]: fault(kind)},
            until=back_on_the_socket,
            reconnect_timeout=0.2,
            timeout=1.0,
        )
        assert_truth(sim, run)  # no bar lost or repeated on any feed
        assert sim.pending_faults == 0  # the reconnection met the fault
        assert sim.stats.ws_connections >= 2
    assert run.path == "websocket", run.messages  # back on the socket
    for symbol in SYMBOLS[feeds]:
        assert run.statuses[symbol][-1] == "LIVE", (symbol, run.statuses[symbol])
