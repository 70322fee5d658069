"""The exchange calendar cuts buckets exactly as the wire calendar of interfaces.md."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.models.calendar import (
    Bucket,
    bucket_at,
    default_start,
    next_bucket,
    period_last_date,
    session_bounds,
)

NY = ZoneInfo("America/New_York")


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY).astimezone(timezone.utc)  # type: ignore[misc]


def test_sessions_are_weekdays_in_new_york_time_across_dst() -> None:
    assert session_bounds(date(2024, 1, 6)) is None  # Saturday
    assert session_bounds(date(2024, 1, 2)) == (ny(2024, 1, 2, 9, 30), ny(2024, 1, 2, 16))
    summer = session_bounds(date(2024, 7, 1), outside_rth=True)
    assert summer == (ny(2024, 7, 1, 4), ny(2024, 7, 1, 20))
    assert summer[0].hour == 8  # EDT: 04:00 New York is 08:00 UTC


@pytest.mark.parametrize(
    ("moment", "tf", "stamp", "end"),
    [
        (ny(2024, 1, 2, 9, 31), Timeframe.MINUTE_5, ny(2024, 1, 2, 9, 30), ny(2024, 1, 2, 9, 35)),
        (ny(2024, 1, 2, 9, 45), Timeframe.HOUR_1, ny(2024, 1, 2, 9, 30), ny(2024, 1, 2, 10)),
        (ny(2024, 1, 2, 15, 0), Timeframe.HOUR_1, ny(2024, 1, 2, 15), ny(2024, 1, 2, 16)),
        (ny(2024, 1, 2, 15, 30), Timeframe.HOUR_4, ny(2024, 1, 2, 12), ny(2024, 1, 2, 16)),
        (ny(2024, 1, 2, 10, 0), Timeframe.HOUR_8, ny(2024, 1, 2, 9, 30), ny(2024, 1, 2, 16)),
        (ny(2024, 1, 3, 12, 0), Timeframe.DAY_1, ny(2024, 1, 3, 9, 30), ny(2024, 1, 3, 16)),
        (ny(2024, 1, 4, 12, 0), Timeframe.WEEK_1, ny(2024, 1, 1, 9, 30), ny(2024, 1, 5, 16)),
        (ny(2024, 6, 12, 12), Timeframe.MONTH_1, ny(2024, 6, 3, 9, 30), ny(2024, 6, 28, 16)),
    ],
)
def test_buckets_align_to_midnight_and_clip_to_the_session(
    moment: datetime, tf: Timeframe, stamp: datetime, end: datetime
) -> None:
    assert bucket_at(moment, tf) == Bucket(stamp, end)


def test_outside_rth_buckets_and_times_outside_every_session() -> None:
    assert bucket_at(ny(2024, 1, 2, 8, 0), Timeframe.MINUTE_5) is None
    assert bucket_at(ny(2024, 1, 2, 16, 0), Timeframe.MINUTE_5) is None
    assert bucket_at(ny(2024, 1, 6, 12, 0), Timeframe.DAY_1) is None
    got = bucket_at(ny(2024, 1, 2, 19, 59), Timeframe.HOUR_8, outside_rth=True)
    assert got == Bucket(ny(2024, 1, 2, 16), ny(2024, 1, 2, 20))
    with pytest.raises(ConfigError):
        bucket_at(datetime(2024, 1, 2, 15), Timeframe.MINUTE_5)


def test_next_bucket_skips_nights_and_weekends() -> None:
    friday_last = bucket_at(ny(2024, 1, 5, 15, 59), Timeframe.MINUTE_5)
    assert friday_last is not None
    assert next_bucket(friday_last, Timeframe.MINUTE_5).start == ny(2024, 1, 8, 9, 30)
    assert next_bucket(ny(2024, 1, 2, 9, 30), Timeframe.HOUR_1).start == ny(2024, 1, 2, 10)
    assert next_bucket(ny(2024, 1, 1, 9, 30), Timeframe.WEEK_1).start == ny(2024, 1, 8, 9, 30)
    assert next_bucket(ny(2024, 1, 2, 9, 30), Timeframe.MONTH_1).start == ny(2024, 2, 1, 9, 30)


def test_period_last_date_and_default_lookback() -> None:
    assert period_last_date(ny(2024, 1, 1, 9, 30), Timeframe.WEEK_1) == date(2024, 1, 5)
    assert period_last_date(ny(2024, 3, 1, 9, 30), Timeframe.MONTH_1) == date(2024, 3, 29)
    now = ny(2024, 1, 10, 12)
    assert now - default_start(Timeframe.MONTH_1, now, 300) == timedelta(days=15 * 365)


@pytest.mark.parametrize(
    ("timeframe", "now"),
    [
        (Timeframe.MINUTE_1, ny(2024, 3, 5, 10, 0, 30)),  # mid-session
        (Timeframe.MINUTE_5, ny(2024, 1, 10, 12)),
        (Timeframe.MINUTE_5, ny(2024, 3, 9, 12)),  # a Saturday
        (Timeframe.HOUR_1, ny(2024, 3, 11, 8)),  # before Monday's open
        (Timeframe.DAY_1, ny(2024, 3, 5, 12)),
    ],
)
def test_default_start_holds_the_asked_number_of_bars(timeframe: Timeframe, now: datetime) -> None:
    """Bug: the default backfill was sized in calendar days: "about 300 bars" fetched 1,174
    one-minute bars. It now walks the calendar back bar by bar."""
    start = default_start(timeframe, now, 300)
    count = 0
    bucket = bucket_at(start, timeframe)
    assert bucket is not None and bucket.start == start
    while bucket.end <= now:
        count += 1
        bucket = next_bucket(bucket, timeframe)
    assert count == 300
