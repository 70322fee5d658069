"""BarBuilder and TickBuilder on hand-made snapshots (the gateway's clock, never the local)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from backtrader_ibkr_cp.live.builder import BarBuilder, TickBuilder
from backtrader_ibkr_cp.models import Availability, Bar, Snapshot, Timeframe

NY = ZoneInfo("America/New_York")
CONID = 265598


def at(hour: int, minute: int, second: float = 0.0, day: int = 2) -> datetime:
    base = datetime(2024, 1, day, hour, minute, tzinfo=NY).astimezone(timezone.utc)
    return base + timedelta(seconds=second)


def snap(
    when: datetime | None,
    last: float | None,
    volume: float | None,
    *,
    prior_close: bool = False,
    size: float | None = None,
) -> Snapshot:
    return Snapshot(
        CONID,
        timestamp=when,
        last=last,
        volume=volume,
        last_size=size,
        availability=Availability("RpB"),
        last_is_prior_close=prior_close,
    )


def feed(builder: BarBuilder, snapshots: list[Snapshot]) -> list[Bar]:
    out: list[Bar] = []
    for s in snapshots:
        out.extend(builder.update(s))
    return out


def test_a_watched_bar_gets_ohlc_from_last_prices_and_volume_from_the_cumulative_change() -> None:
    builder = BarBuilder(Timeframe.MINUTE_5)
    bars = feed(
        builder,
        [
            snap(at(9, 29, 50), 100.0, 1_000, prior_close=True),  # pre-open: C prefix
            snap(at(9, 30, 1), 100.5, 1_200),
            snap(at(9, 31), 101.0, 1_500),
            snap(at(9, 33), 99.5, 2_000),
            snap(at(9, 34, 50), 100.0, 2_600),
            snap(at(9, 35, 2), 100.2, 2_700),  # completes the 09:30 bar
        ],
    )
    assert bars == [Bar(at(9, 30), 100.5, 101.0, 99.5, 100.0, 1_600)]
    assert builder.forming is not None and builder.forming.start == at(9, 35)


def test_the_bar_forming_at_start_is_incomplete_and_dropped() -> None:
    builder = BarBuilder("5min")
    bars = feed(
        builder,
        [
            snap(at(9, 41), 100.0, 10_000),
            snap(at(9, 42), 100.5, 10_500),
            snap(at(9, 45, 1), 100.7, 10_700),
            snap(at(9, 49), 100.9, 11_000),
            snap(at(9, 50, 1), 101.0, 11_100),
        ],
    )
    assert [b.timestamp for b in bars] == [at(9, 45)]
    assert bars[0].open == 100.7 and bars[0].close == 100.9 and bars[0].volume == 500
    assert builder.incomplete == 1


def test_preflight_stale_prior_close_and_out_of_session_snapshots_are_ignored() -> None:
    builder = BarBuilder(Timeframe.MINUTE_1)
    assert builder.update(Snapshot(CONID)) == []  # pre-flight: no fields, no time
    assert builder.update(snap(None, 100.0, 5)) == []
    feed(builder, [snap(at(9, 0), 99.0, 100), snap(at(9, 29, 59), 99.5, 300)])  # pre-market
    assert builder.forming is None
    feed(builder, [snap(at(9, 30, 10), 100.0, 400), snap(at(9, 30, 5), 150.0, 900)])  # older
    bars = builder.update(snap(at(9, 31, 1), 100.1, 450))
    assert bars == [Bar(at(9, 30), 100.0, 100.0, 100.0, 100.0, 100)]


def test_flush_closes_a_bar_when_gateway_time_passes_its_end_without_snapshots() -> None:
    builder = BarBuilder(Timeframe.MINUTE_5)
    feed(builder, [snap(at(15, 54), 100.0, 1), snap(at(15, 56), 101.0, 11)])
    assert builder.flush(at(15, 59, 59)) == []
    assert builder.flush(at(16, 0)) == [Bar(at(15, 55), 101.0, 101.0, 101.0, 101.0, 10)]
    assert builder.flush(at(16, 5)) == []


def test_session_end_closes_the_last_bar_on_an_after_hours_snapshot() -> None:
    builder = BarBuilder(Timeframe.HOUR_1)
    feed(builder, [snap(at(14, 59), 100.0, 1), snap(at(15, 10), 99.0, 21)])
    bars = builder.update(snap(at(16, 0, 30), 98.0, 50))
    assert bars == [Bar(at(15, 0), 99.0, 99.0, 99.0, 99.0, 20)]
    assert builder.forming is None  # 16:00:30 is outside regular hours


def test_outside_rth_builds_pre_market_bars() -> None:
    builder = BarBuilder(Timeframe.MINUTE_1, outside_rth=True)
    bars = feed(builder, [snap(at(8, 59, 30), 50.0, 0), snap(at(9, 0, 1), 51.0, 7)])
    bars += builder.flush(at(9, 1))
    assert bars == [Bar(at(9, 0), 51.0, 51.0, 51.0, 51.0, 7)]


def test_daily_volume_reset_and_reset_after_a_lost_connection() -> None:
    builder = BarBuilder(Timeframe.DAY_1)
    feed(builder, [snap(at(9, 0), 10.0, 900_000), snap(at(9, 31), 10.5, 120)])  # counter reset
    bars = builder.update(snap(at(16, 1), 10.6, 500))
    assert bars == [Bar(at(9, 30), 10.5, 10.5, 10.5, 10.5, 120)]
    builder.update(snap(at(9, 31, day=3), 11.0, 130))
    builder.reset()
    assert builder.watching_since is None and builder.forming is None


def test_ticks_mode_emits_one_bar_per_changed_snapshot() -> None:
    ticks = TickBuilder()
    out = [
        ticks.update(s)
        for s in (
            snap(at(9, 31), 100.0, 1_000),  # baseline
            snap(at(9, 31, 1), 100.0, 1_000),  # nothing traded
            snap(at(9, 31, 2), 100.0, 1_100),  # same price, more volume
            snap(at(9, 31, 3), 100.3, None, size=50),  # no cumulative volume: last size
            snap(at(16, 30), 100.4, 1_300),  # after hours
        )
    ]
    assert out == [
        None,
        None,
        Bar(at(9, 31, 2), 100.0, 100.0, 100.0, 100.0, 100),
        Bar(at(9, 31, 3), 100.3, 100.3, 100.3, 100.3, 50),
        None,
    ]
