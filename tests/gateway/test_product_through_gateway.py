"""The product end to end through IBKR's real Client Portal Gateway: client -> real gateway ->
simulated IBKR. Every client operation, a historical Cerebro run and a short live run equal the
simulator's ground truth; TLS works with the gateway's own (self-signed, expired) certificate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import backtrader as bt
import pytest
from conftest import TUESDAY_MORNING, GatewayStack

from backtrader_ibkr_cp import (
    Bar,
    GatewayClient,
    IBKRCPStore,
    NetworkError,
    RequestTimeout,
    Timeframe,
)
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.simulator import SimBar
from tests.support.truth import truth_rows

UTC = timezone.utc
FAST = RetryPolicy(backoff_factor=0.01, jitter=0.0)


def rows(
    bars: list[Bar] | list[SimBar],
) -> list[tuple[datetime, float, float, float, float, float]]:
    return [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars]


@pytest.fixture
def client(stack: GatewayStack) -> Iterator[GatewayClient]:
    with GatewayClient(stack.gw.url, retry=FAST, timeout=10.0) as c:
        yield c


@pytest.fixture(autouse=True)
def fresh_stores() -> Iterator[None]:
    IBKRCPStore._reset()
    yield
    IBKRCPStore._reset()


def test_every_client_operation_through_the_real_gateway(
    client: GatewayClient, stack: GatewayStack
) -> None:
    sim = stack.sim
    assert client.authenticate() is True
    assert client.health_check() is True and client.validate_session() is True
    assert {c.contract_id for c in client.search_contract("AAPL")} >= {265598}
    assert client.supports_symbol("IBM") is True

    start, end = datetime(2024, 2, 20, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC)
    bars = client.fetch_bars("AAPL", Timeframe.MINUTE_5, start, end)
    assert rows(bars) == rows(sim.truth("AAPL", "5min", start, end))
    assert len(bars) > 700

    latest = client.fetch_latest_bar("IBM")
    assert (
        latest.timestamp
        == sim.truth("IBM", "1min", TUESDAY_MORNING - timedelta(minutes=3))[-1].timestamp
    )
    quote = client.fetch_quote("AAPL")
    assert quote.spread() > 0
    tick = client.fetch_tick("AAPL")
    assert tick.price > 0
    assert client.fetch_snapshot(8314).conid == 8314
    assert sim.stats.rate_limited == 0


def test_session_expiry_recovers_through_the_real_gateway(
    client: GatewayClient, stack: GatewayStack
) -> None:
    start, end = datetime(2024, 3, 4, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC)
    before = client.fetch_bars("MSFT", "15min", start, end)
    stack.sim.expire_session()
    assert client.fetch_bars("MSFT", "15min", start, end) == before
    assert client.validate_session() is True


def test_pinned_fingerprint_of_the_gateways_certificate(stack: GatewayStack) -> None:
    with GatewayClient(stack.gw.url, verify=stack.gw.cert_fingerprint, retry=FAST) as pinned:
        assert pinned.health_check() is True
    wrong = "sha256:" + ":".join(["00"] * 32)
    with (
        GatewayClient(stack.gw.url, verify=wrong, retry=FAST) as bad,
        pytest.raises(NetworkError, match="fingerprint mismatch"),
    ):
        bad.authenticate()
    with (
        GatewayClient(stack.gw.url, verify=True, retry=FAST) as strict,
        pytest.raises(NetworkError, match="certificate verification failed"),
    ):
        strict.authenticate()


def test_historical_cerebro_run_through_the_real_gateway(stack: GatewayStack) -> None:
    class Collect(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.seen: list[tuple[datetime, float, float, float, float, float]] = []

        def next(self) -> None:
            d = self.data
            when = bt.num2date(d.datetime[0]).replace(tzinfo=UTC)
            self.seen.append((when, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))

    store = IBKRCPStore(gateway_url=stack.gw.url)
    data = store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Minutes,
        compression=60,
        historical=True,
        fromdate=datetime(2024, 2, 1),
        todate=datetime(2024, 3, 1),
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(Collect)
    (strategy,) = cerebro.run()
    truth = stack.sim.truth(
        "AAPL", "1h", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
    )
    assert strategy.seen == truth_rows(truth, "1h")  # each bar stamped at its end


def test_short_live_run_through_the_real_gateway(private_stack: GatewayStack) -> None:
    sim = private_stack.sim  # IBKR's own pacing limits on this one
    sim.speed = 120.0

    class LiveCollect(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.seen: list[tuple[datetime, float, float, float, float, float]] = []
            self.statuses: list[str] = []
            self.live = 0

        def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
            self.statuses.append(data._getstatusname(status))

        def next(self) -> None:
            d = self.data
            when = bt.num2date(d.datetime[0]).replace(tzinfo=UTC)
            self.seen.append((when, d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0]))
            if self.statuses and self.statuses[-1] == "LIVE":
                self.live += 1
                if self.live >= 4:
                    self.env.runstop()

    store = IBKRCPStore(gateway_url=private_stack.gw.url, poll_interval=0.2)
    data = store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        fromdate=datetime(2024, 3, 5, 9, 40),  # naive: exchange time (New York)
        qcheck=0.1,
    )
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(LiveCollect)
    guard = threading.Timer(40.0, cerebro.runstop)
    guard.start()
    try:
        (strategy,) = cerebro.run()
    finally:
        guard.cancel()
    assert strategy.statuses[:3] == ["CONNECTED", "DELAYED", "LIVE"], strategy.statuses
    assert strategy.live >= 4, (strategy.statuses, len(strategy.seen), sim.stats.requests)
    first, last = strategy.seen[0][0], strategy.seen[-1][0]
    truth = sim.truth("AAPL", "1min", first - timedelta(minutes=1), last)
    assert strategy.seen == truth_rows(truth, "1min")  # none missing or repeated, across the seam
    assert sim.stats.rate_limited == 0


def test_stopped_backend_ends_in_request_timeout(private_stack: GatewayStack) -> None:
    private_stack.sim.stop()  # the real gateway keeps running and hangs on every API call
    client = GatewayClient(private_stack.gw.url, timeout=(2.0, 2.0), retry=RetryPolicy.no_retries())
    with client, pytest.raises(RequestTimeout, match="timeout") as raised:
        client.api.auth_status()
    assert raised.value.timeout == 2.0  # the client's read timeout ended it, not the gateway
