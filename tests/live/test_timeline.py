"""Timeline: de-duplication with <= on the last stamp, the due interval, the end."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.live.events import StreamConfig
from backtrader_ibkr_cp.live.timeline import Timeline
from backtrader_ibkr_cp.models import Bar, Timeframe

NY = ZoneInfo("America/New_York")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(timezone.utc)  # type: ignore[misc]


def bar(start: datetime) -> Bar:
    return Bar(start, 1.0, 2.0, 0.5, 1.5, 100.0)


def test_bars_are_delivered_once_in_order_and_the_cursor_follows() -> None:
    line = Timeline(Timeframe.MINUTE_5, outside_rth=False, ticks=False, end=None, after=None)
    assert line.due() is None
    first = line.accept(bar(ny(2024, 3, 8, 15, 50)), live=False)
    assert first is not None and first.end == ny(2024, 3, 8, 15, 55) and not first.tick
    assert line.accept(bar(ny(2024, 3, 8, 15, 50)), live=True) is None  # repeat
    assert line.accept(bar(ny(2024, 3, 8, 15, 45)), live=True) is None  # older
    assert line.accept(bar(ny(2024, 3, 8, 15, 55)), live=True) is not None
    due = line.due()  # Friday's last bar is settled: Monday's first is due
    assert due is not None and due.start == ny(2024, 3, 11, 9, 30)


def test_after_end_and_empty_intervals() -> None:
    line = Timeline(
        Timeframe.HOUR_1,
        outside_rth=False,
        ticks=False,
        end=ny(2024, 3, 8, 12),
        after=ny(2024, 3, 8, 9, 30),  # the 09:30 bar came from another feed
    )
    assert line.accept(bar(ny(2024, 3, 8, 9, 30)), live=False) is None
    due = line.due()
    assert due is not None and due.start == ny(2024, 3, 8, 9, 30)  # bucket holding `after`
    line.settle_empty(due)
    assert line.due() is not None and line.due().start == ny(2024, 3, 8, 10)  # type: ignore[union-attr]
    assert line.accept(bar(ny(2024, 3, 8, 10)), live=True) is not None
    assert not line.reached_end(None)
    assert line.accept(bar(ny(2024, 3, 8, 12)), live=True) is None  # at end: not wanted
    assert line.accept(bar(ny(2024, 3, 8, 11)), live=True) is not None
    assert line.reached_end(None)


def test_ticks_mode_stamps_backfilled_minutes_at_their_end_and_ticks_after_them() -> None:
    line = Timeline(Timeframe.MINUTE_1, outside_rth=False, ticks=True, end=None, after=None)
    minute = line.accept(bar(ny(2024, 3, 8, 10, 0)), live=False)
    assert minute is not None and minute.tick and minute.stamp == ny(2024, 3, 8, 10, 1)
    late = bar(ny(2024, 3, 8, 10, 0, 59))
    assert line.accept_tick(late) is None  # inside the minute already delivered
    tick = line.accept_tick(bar(ny(2024, 3, 8, 10, 1) + timedelta(seconds=2)))
    assert tick is not None and line.cursor == ny(2024, 3, 8, 10, 2)


def test_stream_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="before end"):
        StreamConfig(Timeframe.DAY_1, start=ny(2024, 3, 8, 12), end=ny(2024, 3, 8, 11))
    with pytest.raises(ConfigError, match="tz-aware"):
        StreamConfig(Timeframe.DAY_1, start=datetime(2024, 3, 8))
    with pytest.raises(ConfigError, match="ticks mode"):
        StreamConfig(None, historical=True)
    with pytest.raises(ConfigError, match="reconnect"):
        StreamConfig(Timeframe.DAY_1, reconnect=-2)
