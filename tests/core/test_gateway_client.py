"""The original design's operations on ``GatewayClient``, over HTTPS against the simulator."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp import (
    AuthenticationError,
    Bar,
    ConfigError,
    Contract,
    DataUnavailable,
    GatewayClient,
    GatewayConnectionError,
    MarketError,
    Timeframe,
)
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.contracts.resolver import AmbiguousContract, ContractNotFound
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.policies import FAST_RETRY

#: Tuesday 2024-03-05 13:00:30 New York: the simulated market is open.
OPEN = datetime(2024, 3, 5, 18, 0, 30, tzinfo=timezone.utc)


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    return sim_factory(seed=3, speed=0, start=OPEN)


@pytest.fixture
def client(sim: GatewaySimulator) -> Iterator[GatewayClient]:
    with GatewayClient(sim.url, retry=FAST_RETRY, timeout=5.0) as c:
        yield c


def as_tuples(bars: list[Bar]) -> list[tuple[datetime, float, float, float, float, float]]:
    return [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars]


def test_session_operations(client: GatewayClient, sim: GatewaySimulator) -> None:
    assert client.authenticate() is True
    assert client.health_check() is True
    assert client.validate_session() is True
    sim.expire_session()
    assert client.validate_session() is False
    assert client.reconnect() is True
    assert client.validate_session() is True


def test_a_lost_session_is_over_once_a_check_begun_after_it_finds_the_session_usable(
    client: GatewayClient, sim: GatewaySimulator
) -> None:
    """The marks a live feed uses to tell a stale report of a lost session from a live one:
    only a check (auth status, ssodh/init, tickle) begun after the mark counts."""
    assert client.authenticate() is True
    sim.expire_session()
    mark = client.session_mark()
    assert client.session_usable_since(mark) is False
    assert client.validate_session() is False  # a check that found the session lost
    assert client.session_usable_since(mark) is False
    assert client.reconnect() is True  # ssodh/init, then the auth status says usable
    assert client.session_usable_since(mark) is True
    later = client.session_mark()
    assert client.session_usable_since(later) is False
    client.session.tickle_once()
    assert client.session_usable_since(later) is True


def test_authenticate_opens_brokerage_session_when_only_logged_in() -> None:
    with (
        GatewaySimulator(seed=3, speed=0, start=OPEN, authenticated=False) as sim,
        GatewayClient(sim.url, retry=FAST_RETRY) as client,
    ):
        assert client.health_check() is False
        assert client.authenticate() is True
        assert client.health_check() is True


def test_health_check_is_false_not_raising_when_gateway_is_down() -> None:
    with GatewaySimulator(seed=3, speed=0, start=OPEN) as sim:
        url = sim.url
    client = GatewayClient(url, retry=RetryPolicy.no_retries(), timeout=2.0)
    try:
        assert client.health_check() is False
        with pytest.raises(GatewayConnectionError, match="gateway"):
            client.authenticate()
    finally:
        client.close()


def test_fetch_bars_equals_ground_truth(client: GatewayClient, sim: GatewaySimulator) -> None:
    start = datetime(2024, 2, 1, tzinfo=timezone.utc)
    end = datetime(2024, 3, 1, tzinfo=timezone.utc)
    bars = client.fetch_bars("AAPL", Timeframe.MINUTE_5, start, end)
    truth = sim.truth("AAPL", "5min", start, end)
    assert len(bars) == len(truth) > 1000
    assert as_tuples(bars) == [
        (t.timestamp, t.open, t.high, t.low, t.close, t.volume) for t in truth
    ]
    assert sim.stats.rate_limited == 0


def test_symbol_accepts_spec_conid_and_contract(client: GatewayClient) -> None:
    start = datetime(2024, 3, 4, tzinfo=timezone.utc)
    end = datetime(2024, 3, 5, tzinfo=timezone.utc)
    by_symbol = client.fetch_bars("IBM", "1h", start, end)
    by_spec = client.fetch_bars("IBM-STK-SMART-USD", "1h", start, end)
    by_conid = client.fetch_bars(8314, "1h", start, end)
    by_contract = client.fetch_bars(Contract(8314, "IBM"), "1h", start, end)
    assert by_symbol == by_spec == by_conid == by_contract
    assert len(by_symbol) == 7


def test_latest_bar_quote_tick_snapshot(client: GatewayClient, sim: GatewaySimulator) -> None:
    latest = client.fetch_latest_bar("AAPL")
    truth = sim.truth("AAPL", "1min", OPEN - timedelta(minutes=5), OPEN)
    assert latest.timestamp == truth[-1].timestamp
    assert latest.close == truth[-1].close

    quote = client.fetch_quote("AAPL")
    assert quote.bid_price < quote.ask_price
    assert quote.spread() == pytest.approx(quote.ask_price - quote.bid_price)
    tick = client.fetch_tick("AAPL")
    assert tick.price > 0 and tick.timestamp.tzinfo is not None
    snap = client.fetch_snapshot(265598)
    assert snap.conid == 265598 and snap.last is not None and not snap.is_preflight


def test_search_and_supports(client: GatewayClient) -> None:
    found = client.search_contract("AAPL")
    assert {c.contract_id for c in found} >= {265598, 38708077, 273982664}
    assert all(isinstance(c, Contract) and c.symbol == "AAPL" for c in found)
    assert client.supports_symbol("AAPL") is True
    assert client.supports_symbol("NOSUCHSYMBOL") is False
    with pytest.raises(ContractNotFound, match="NOSUCHSYMBOL"):
        client.resolve("NOSUCHSYMBOL")
    with pytest.raises(AmbiguousContract, match="DUAL"):
        client.resolve("DUAL")
    with pytest.raises(ConfigError, match="non-empty"):
        client.search_contract("  ")


def test_no_data_window_is_unavailable(client: GatewayClient) -> None:
    saturday = datetime(2024, 3, 2, tzinfo=timezone.utc)
    bars = client.fetch_bars("AAPL", "5min", saturday, saturday + timedelta(days=1))
    assert bars == []


def test_with_retry_retries_transient_errors(client: GatewayClient) -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise GatewayConnectionError("gateway went away; retry")
        return "ok"

    assert client.with_retry(3, flaky) == "ok"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(GatewayConnectionError):
        client.with_retry(1, flaky)
    with pytest.raises(ConfigError):
        client.with_retry(-1, flaky)


def test_with_retry_does_not_retry_data_unavailable(client: GatewayClient) -> None:
    calls: list[int] = []

    def missing() -> None:
        calls.append(1)
        raise DataUnavailable("no data for this window")

    with pytest.raises(DataUnavailable):
        client.with_retry(5, missing)
    assert len(calls) == 1


def test_expired_session_recovers_transparently(
    client: GatewayClient, sim: GatewaySimulator
) -> None:
    start = datetime(2024, 3, 4, tzinfo=timezone.utc)
    end = datetime(2024, 3, 5, tzinfo=timezone.utc)
    first = client.fetch_bars("AAPL", "15min", start, end)
    sim.expire_session()
    assert client.fetch_bars("AAPL", "15min", start, end) == first


def test_not_logged_in_says_where_to_log_in() -> None:
    with (
        GatewaySimulator(seed=3, speed=0, start=OPEN) as sim,
        GatewayClient(sim.url, retry=FAST_RETRY) as client,
    ):
        client.api.logout()
        with pytest.raises(AuthenticationError, match=r"log in at https://127\.0\.0\.1"):
            client.authenticate()


def test_keepalive_thread_stops_on_close(sim: GatewaySimulator) -> None:
    before = {t.name for t in threading.enumerate()}
    client = GatewayClient(sim.url, tickle_interval=0.2).start()
    client.close()
    after = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert not [n for n in after if "ibkr-sim" not in n]


def test_every_error_is_a_market_error() -> None:
    for cls in (AmbiguousContract, ContractNotFound):
        assert issubclass(cls, MarketError)


def test_todays_daily_bar_is_complete_after_the_close() -> None:
    """Regression: completeness used the nominal bar length (start + 24 h), so after the
    16:00 close ``fetch_latest_bar(..., "1d")`` still returned yesterday's bar."""
    after_close = datetime(2024, 3, 5, 22, 0, tzinfo=timezone.utc)  # Tue 17:00 New York
    with (
        GatewaySimulator(seed=3, speed=0, start=after_close) as sim,
        GatewayClient(sim.url, retry=FAST_RETRY) as client,
    ):
        latest = client.fetch_latest_bar("AAPL", "1d")
        truth = sim.truth("AAPL", "1d", after_close - timedelta(days=3), after_close)
        assert latest.timestamp == truth[-1].timestamp
        assert latest.timestamp.date() == after_close.date()
        hourly = client.fetch_bars("AAPL", "1h", after_close - timedelta(hours=8), after_close)
        assert hourly[-1].timestamp == datetime(2024, 3, 5, 20, 0, tzinfo=timezone.utc)
