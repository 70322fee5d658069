"""HistoryFetcher against an in-memory history API (plain Python, no HTTP, no patching)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp.errors import (
    ApiError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    RateLimitExceeded,
)
from backtrader_ibkr_cp.history.fetch import HistoryFetcher
from backtrader_ibkr_cp.history.planner import minimum_requests
from backtrader_ibkr_cp.models.bar import Bar, BarValidator, InvalidBar
from backtrader_ibkr_cp.models.history import HistoryResponse
from backtrader_ibkr_cp.models.timeframe import Timeframe
from tests.history.history_model import FakeHistoryApi, bar_starts, make_bar

UTC = timezone.utc
START = datetime(2024, 1, 2, tzinfo=UTC)


def truth(tf: Timeframe, start: datetime, end: datetime, outside_rth: bool = False) -> list[Bar]:
    return [make_bar(t) for t in bar_starts(tf, start, end, outside_rth)]


@pytest.mark.parametrize(
    ("bar", "days", "outside_rth"),
    [("1min", 3, True), ("5min", 20, False), ("15min", 40, True), ("1h", 100, False),
     ("4h", 400, True), ("1d", 1200, False), ("1w", 2000, False), ("1m", 4000, False)],
)  # fmt: skip
def test_fetch_matches_the_truth_with_the_minimum_requests(
    bar: str, days: int, outside_rth: bool, no_thread_leak: None
) -> None:
    tf = Timeframe.parse(bar)
    start = START + timedelta(hours=15, minutes=7)  # mid-session, between bars
    end = start + timedelta(days=days)
    api = FakeHistoryApi()
    bars = HistoryFetcher(api).fetch(265598, tf, start, end, outside_rth=outside_rth)
    assert bars == truth(tf, start, end, outside_rth)
    assert len(api.calls) == minimum_requests(tf, start, end, outside_rth)
    assert {call[4] for call in api.calls} == {outside_rth}


def test_windows_run_concurrently_up_to_the_limit(no_thread_leak: None) -> None:
    """The first calls wait until three are in flight together, which only a fetcher that
    runs three at once brings about; more than three never are."""
    api = FakeHistoryApi(overlap=3)
    end = START + timedelta(days=14)
    HistoryFetcher(api, concurrency=3).fetch(1, "5min", START, end)
    assert len(api.calls) == 10
    assert api.peak == 3


def test_sequential_when_concurrency_is_one() -> None:
    """Every window is fetched on the caller's own thread, one after the other."""
    api = FakeHistoryApi()
    HistoryFetcher(api, concurrency=1).fetch(1, "5min", START, START + timedelta(days=7))
    assert api.peak == 1
    assert len(api.threads) > 1 and set(api.threads) == {threading.get_ident()}


def test_no_data_is_retried_once_then_empty() -> None:
    failed: list[datetime] = []

    def no_data_once(bar: str, period: str, anchor: datetime) -> None:
        if anchor.day == 3 and anchor not in failed:
            failed.append(anchor)
            raise DataUnavailable("no data", gateway_message="No data.")

    api = FakeHistoryApi(fault=no_data_once)
    end = START + timedelta(days=3)
    assert HistoryFetcher(api).fetch(1, "5min", START, end) == truth(Timeframe.MINUTE_5, START, end)
    assert len(api.calls) == 3 + 1


def test_persistent_no_data_counts_as_an_empty_window() -> None:
    def holiday(bar: str, period: str, anchor: datetime) -> None:
        if anchor.day == 3:
            raise DataUnavailable("no data", gateway_message="No data.")

    api = FakeHistoryApi(fault=holiday, extra=timedelta(0))  # no neighbour reaches day 3
    end = START + timedelta(days=3)
    bars = HistoryFetcher(api).fetch(1, "5min", START, end)
    assert {b.timestamp.day for b in bars} == {2, 4}
    assert len(api.calls) == 3 + 1
    once = FakeHistoryApi(fault=holiday, extra=timedelta(0))
    assert HistoryFetcher(once, no_data_retries=0).fetch(1, "5min", START, end) == bars
    assert len(once.calls) == 3


def test_transient_chart_error_is_retried_once() -> None:
    seen: list[datetime] = []

    def hiccup(bar: str, period: str, anchor: datetime) -> None:
        if anchor not in seen:
            seen.append(anchor)
            raise ApiError("chart", status=200, gateway_message="Chart data is not available")

    api = FakeHistoryApi(fault=hiccup)
    end = START + timedelta(days=2)
    assert HistoryFetcher(api).fetch(1, "1min", START, end) == truth(Timeframe.MINUTE_1, START, end)
    assert len(api.calls) == 4


def test_persistent_chart_error_is_raised() -> None:
    def broken(bar: str, period: str, anchor: datetime) -> None:
        raise ApiError("chart", status=200, gateway_message="Chart data is not available")

    with pytest.raises(ApiError, match="history window"):
        HistoryFetcher(FakeHistoryApi(fault=broken)).fetch(
            1, "1d", START, START + timedelta(days=9)
        )


def test_an_error_cancels_the_remaining_windows_and_names_the_window(
    no_thread_leak: None,
) -> None:
    def limited(bar: str, period: str, anchor: datetime) -> None:
        raise RateLimitExceeded("Too many requests; wait", endpoint="/x", retry_after=600)

    api = FakeHistoryApi(fault=limited, delay=0.01)
    with pytest.raises(RateLimitExceeded) as info:
        HistoryFetcher(api, concurrency=2).fetch(265598, "5min", START, START + timedelta(days=60))
    assert len(api.calls) < 10  # 42 windows planned; the rest were cancelled
    assert info.value.retry_after == 600
    assert "bar=5min period=1d startTime=2024" in info.value.context["window"]
    assert "conid 265598" in str(info.value) and str(info.value).startswith("Too many requests")


def test_now_drops_forming_bars_and_windows_after_it() -> None:
    now = datetime(2024, 1, 3, 15, 2, 30, tzinfo=UTC)  # 10:02:30 New York, Wednesday
    api = FakeHistoryApi()
    bars = HistoryFetcher(api).fetch(1, "5min", START, START + timedelta(days=30), now=now)
    assert bars[-1].timestamp == datetime(2024, 1, 3, 14, 55, tzinfo=UTC)  # 09:55 is complete
    assert len(api.calls) == 2
    assert max(call[3] for call in api.calls) <= now + timedelta(seconds=1)
    assert HistoryFetcher(api).fetch(1, "5min", START, START + timedelta(days=1), now=START) == []


def test_bars_are_clipped_to_the_range() -> None:
    start = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    end = datetime(2024, 1, 2, 16, 0, tzinfo=UTC)
    bars = HistoryFetcher(FakeHistoryApi()).fetch(1, "1min", start, end)
    assert len(bars) == 60
    assert bars[0].timestamp == start and bars[-1].timestamp == end - timedelta(minutes=1)


class _Scripted:
    """Answers every request with the same bars."""

    def __init__(self, bars: list[Bar]) -> None:
        self.bars = bars

    def history(
        self,
        conid: int,
        bar: str,
        period: str,
        start_time: datetime | None,
        outside_rth: bool = False,
    ) -> HistoryResponse:
        return HistoryResponse(symbol="X", bars=list(self.bars))


def test_invalid_and_conflicting_bars_go_to_the_validator() -> None:
    t = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    good = Bar(t, 1, 2, 1, 2, 100)
    bad = Bar(t + timedelta(minutes=1), 1, 1, 2, 1, 100)  # high < low
    other = Bar(t, 1, 3, 1, 3, 100)  # a second, different bar for t
    rejected: list[InvalidBar] = []
    validator = BarValidator(on_invalid=rejected.append)
    bars = HistoryFetcher(_Scripted([good, bad, other, good])).fetch(
        1, "1min", t, t + timedelta(minutes=5), validator=validator
    )
    assert bars == [good]
    assert [r.bar for r in rejected] == [bad, other]
    assert validator.repeated == 1
    with pytest.raises(DataIntegrityError, match="high 1 is below low 2"):
        HistoryFetcher(_Scripted([bad])).fetch(
            1, "1min", t, t + timedelta(minutes=5), validator=BarValidator(strict=True)
        )


def test_invalid_bars_outside_the_range_are_not_reported() -> None:
    t = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    bad_before = Bar(t - timedelta(minutes=1), 1, 1, 2, 1, 100)
    bars = HistoryFetcher(_Scripted([bad_before])).fetch(
        1, "1min", t, t + timedelta(minutes=5), validator=BarValidator(strict=True)
    )
    assert bars == []


@pytest.mark.parametrize("concurrency", [0, 6, True, 2.5])
def test_bad_concurrency(concurrency: int) -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        HistoryFetcher(FakeHistoryApi(), concurrency=concurrency)


def test_naive_arguments_are_refused_before_any_request() -> None:
    api = FakeHistoryApi()
    with pytest.raises(ConfigError, match="naive"):
        HistoryFetcher(api).fetch(1, "1d", datetime(2024, 1, 2), datetime(2024, 2, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match=r"now .* is naive"):
        HistoryFetcher(api).fetch(
            1, "1d", START, START + timedelta(days=3), now=datetime(2024, 1, 3)
        )
    assert api.calls == []
