"""When bars are complete, and where bars can start, on the exchange calendar. Pure.

The store keeps completed bars only: :func:`complete_until` is the instant before which every
bar is complete at a given "now" (the gateway's clock). :func:`can_hold_bars` tells whether a
span can hold any bar at all (a night or a weekend cannot), so such gaps are never fetched.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..models.calendar import Bucket, bucket_at, next_bucket, next_session_start, session_bounds
from ..models.calendar import trading_date as _trading_date
from ..models.timeframe import BT_DAYS, Timeframe
from .spans import Span

__all__ = ["can_hold_bars", "complete_until", "first_stamp"]


def _latest_open_bucket(now: datetime, timeframe: Timeframe, outside_rth: bool) -> Bucket | None:
    """The bucket holding the latest session open at or before ``now`` (within 8 days)."""
    day = _trading_date(now)
    for back in range(8):
        bounds = session_bounds(day - timedelta(days=back), outside_rth=outside_rth)
        if bounds is not None and bounds[0] <= now:
            return bucket_at(bounds[0], timeframe, outside_rth=outside_rth)
    return None


def complete_until(now: datetime, timeframe: Timeframe, *, outside_rth: bool = False) -> datetime:
    """The instant ``T`` (UTC) such that every bar starting before ``T`` is complete at ``now``.

    Inside a bar's bucket that is the bucket's start (the bar still forming is excluded);
    between sessions it is ``now`` itself, except for weekly and monthly bars, whose bucket
    spans the nights of their week or month (a weekly bar is complete at Friday's close).
    """
    bucket = bucket_at(now, timeframe, outside_rth=outside_rth)
    if bucket is None and not (timeframe.is_intraday or timeframe.bt_timeframe == BT_DAYS):
        bucket = _latest_open_bucket(now, timeframe, outside_rth)
    if bucket is not None and bucket.start <= now < bucket.end:
        return bucket.start
    return now


def first_stamp(moment: datetime, timeframe: Timeframe, *, outside_rth: bool = False) -> datetime:
    """The start of the first bar of ``timeframe`` starting at or after ``moment`` (UTC)."""
    bucket = bucket_at(moment, timeframe, outside_rth=outside_rth)
    if bucket is None:
        opens = next_session_start(moment, outside_rth=outside_rth)
        bucket = bucket_at(opens, timeframe, outside_rth=outside_rth)
        assert bucket is not None  # a session start is inside its session
    while bucket.start < moment:
        bucket = next_bucket(bucket, timeframe, outside_rth=outside_rth)
    return bucket.start


def can_hold_bars(span: Span, timeframe: Timeframe, *, outside_rth: bool = False) -> bool:
    """True when some bar of ``timeframe`` can start inside ``span`` (on the calendar)."""
    return first_stamp(span.start, timeframe, outside_rth=outside_rth) < span.end
