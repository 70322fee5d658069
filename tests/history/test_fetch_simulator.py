"""HistoryFetcher end to end: ApiClient over real HTTPS to the GatewaySimulator on loopback.

Every fetch is compared with the simulator's ground truth (timestamps, OHLC, volume in
shares), and the number of history requests with the planner's minimum.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.errors import DataIntegrityError
from backtrader_ibkr_cp.history.fetch import HistoryFetcher
from backtrader_ibkr_cp.history.planner import minimum_requests
from backtrader_ibkr_cp.models.bar import Bar, BarValidator, InvalidBar
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.sims import make_sim
from tests.support.truth import Row

HISTORY = "/iserver/marketdata/history"
#: Wednesday 2024-06-05 12:00 New York (EDT): a session is under way.
NOW = datetime(2024, 6, 5, 16, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def sim() -> Iterator[GatewaySimulator]:
    with make_sim(seed=1, speed=0, start=NOW) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def client(sim: GatewaySimulator) -> Iterator[ApiClient]:
    """One client (so one pacer) for the module: the simulator's 10 requests/s window spans
    tests, and a second pacer would not know about the first one's requests. Its read
    timeout is far above what the simulator needs to build five years of weekly bars (about
    5 s, more on a busy machine): with the default 10 s a slow answer was retried, and the
    request count came out one too high."""
    transport = Transport(sim.url, verify=sim.cert_path, timeout=(10.0, 90.0))
    yield ApiClient(transport)
    transport.close()


@pytest.fixture
def api(sim: GatewaySimulator, client: ApiClient) -> ApiClient:
    sim.clear_faults()
    sim.stats.reset()
    return client


def rows(bars: list[Bar]) -> list[Row]:
    return [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars]


def truth(sim: GatewaySimulator, bar: str, start: datetime, outside_rth: bool) -> list[Row]:
    found = sim.truth("AAPL", bar, start, NOW, outside_rth=outside_rth)
    return [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in found]


@pytest.mark.parametrize(
    ("bar", "days", "outside_rth"),
    [("5min", 91, False), ("1min", 4, True), ("1h", 120, False), ("1d", 730, False),
     ("1w", 5 * 365, False)],
)  # fmt: skip
def test_fetch_equals_the_ground_truth_with_the_minimum_requests(
    sim: GatewaySimulator, api: ApiClient, bar: str, days: int, outside_rth: bool
) -> None:
    start = NOW - timedelta(days=days)
    bars = HistoryFetcher(api).fetch(
        sim.conid("AAPL"), bar, start, NOW, outside_rth=outside_rth, now=sim.now()
    )
    expected = truth(sim, bar, start, outside_rth)
    assert len(expected) > 50
    assert rows(bars) == expected
    assert sim.stats.requests[HISTORY] == minimum_requests(bar, start, NOW, outside_rth)
    assert sim.stats.rate_limited == 0
    assert sim.stats.max_concurrent_history <= 4


@pytest.mark.parametrize("kind", ["no_data", "duplicate_bars", "out_of_order", "http_500"])
def test_recoverable_faults_still_give_the_truth(
    sim: GatewaySimulator, api: ApiClient, kind: str
) -> None:
    start = NOW - timedelta(days=7)
    sim.inject(kind, count=1, path=HISTORY)
    bars = HistoryFetcher(api).fetch(sim.conid("AAPL"), "5min", start, NOW, now=sim.now())
    assert rows(bars) == truth(sim, "5min", start, False)
    assert sim.pending_faults == 0
    retried = 1 if kind in ("no_data", "http_500") else 0
    assert sim.stats.requests[HISTORY] == minimum_requests("5min", start, NOW) + retried


def test_an_invalid_bar_is_dropped_and_reported_or_raised(
    sim: GatewaySimulator, api: ApiClient
) -> None:
    start = NOW - timedelta(days=7)  # one "1w" window: its middle bar (made invalid) is in range
    conid = sim.conid("AAPL")
    sim.inject("invalid_bar", count=1, path=HISTORY)
    rejected: list[InvalidBar] = []
    bars = HistoryFetcher(api).fetch(
        conid, "1h", start, NOW, now=sim.now(), validator=BarValidator(on_invalid=rejected.append)
    )
    expected = truth(sim, "1h", start, False)
    assert len(rejected) == 1 and len(bars) == len(expected) - 1
    assert set(rows(bars)) < set(expected)
    sim.inject("invalid_bar", count=1, path=HISTORY)
    with pytest.raises(DataIntegrityError, match="is below low"):
        HistoryFetcher(api).fetch(
            conid, "1h", start, NOW, now=sim.now(), validator=BarValidator(strict=True)
        )
