"""The instants tests run at (one definition each)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

UTC = dt.timezone.utc
NY = ZoneInfo("America/New_York")
MINUTE = dt.timedelta(minutes=1)

#: Saturday 2024-03-16 12:00 UTC: every bar of the week before is complete.
WEEKEND = dt.datetime(2024, 3, 16, 12, 0, tzinfo=UTC)
#: Tuesday 2024-03-05 10:00:30 New York (EST): regular hours.
TUESDAY_MORNING = dt.datetime(2024, 3, 5, 15, 0, 30, tzinfo=UTC)
#: Tuesday 2024-03-05 13:00 New York (EST): mid-session.
TUESDAY_MIDDAY = dt.datetime(2024, 3, 5, 18, 0, tzinfo=UTC)
#: Wednesday 2024-03-06 17:00 New York: after that day's close.
WEDNESDAY_EVENING = dt.datetime(2024, 3, 6, 22, 0, tzinfo=UTC)
#: Tuesday 2024-03-05's regular open, naive New York time (as a feed's fromdate).
SESSION_OPEN = dt.datetime(2024, 3, 5, 9, 30)
#: Simulated seconds per real second in live tests: a 1-minute bar every 0.5 s.
LIVE_SPEED = 120.0


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A New York wall time as an aware UTC datetime."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=NY).astimezone(UTC)
