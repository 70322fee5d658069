"""Time zones backtrader can use: anything with a pytz-style ``localize(dt)``.

backtrader calls ``tz.localize(naive)`` on a feed's ``tz``; ``zoneinfo.ZoneInfo`` has no such
method (and is immutable, so backtrader's own monkey-patch fails), and a string only works when
pytz is installed. :func:`localizing_tz` accepts all of them without needing pytz.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError

__all__ = ["LocalizingTzinfo", "LocalizingZone", "localizing_tz"]


class LocalizingZone(ZoneInfo):
    """A ``ZoneInfo`` with pytz's ``localize``: attach the zone to a naive wall time
    (``fold=0`` for an ambiguous time, as ``ZoneInfo`` itself does); an aware datetime is
    converted instead."""

    def localize(self, dt: datetime, is_dst: bool | None = None) -> datetime:
        return dt.astimezone(self) if dt.tzinfo is not None else dt.replace(tzinfo=self)


class LocalizingTzinfo(tzinfo):
    """Wraps any other ``tzinfo`` (e.g. ``datetime.timezone.utc``, dateutil zones) and adds
    ``localize``."""

    def __init__(self, inner: tzinfo) -> None:
        self.inner = inner

    def localize(self, dt: datetime, is_dst: bool | None = None) -> datetime:
        return dt.astimezone(self) if dt.tzinfo is not None else dt.replace(tzinfo=self)

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return self.inner.utcoffset(self._inner_dt(dt))

    def dst(self, dt: datetime | None) -> timedelta | None:
        return self.inner.dst(self._inner_dt(dt))

    def tzname(self, dt: datetime | None) -> str | None:
        return self.inner.tzname(self._inner_dt(dt))

    def fromutc(self, dt: datetime) -> datetime:
        return self.inner.fromutc(dt.replace(tzinfo=self.inner)).replace(tzinfo=self)

    def _inner_dt(self, dt: datetime | None) -> datetime | None:
        return dt.replace(tzinfo=self.inner) if dt is not None else None

    def __repr__(self) -> str:
        return f"LocalizingTzinfo({self.inner!r})"


def localizing_tz(value: Any) -> Any:
    """A tz backtrader can use, from None (returns None: backtrader keeps UTC), an IANA name
    (``"America/New_York"``), a ``ZoneInfo``, a pytz zone (returned as is) or any ``tzinfo``.

    Raises ConfigError for an unknown name or an unusable value.
    """
    if value is None or hasattr(value, "localize"):
        return value
    if isinstance(value, str):
        try:
            return LocalizingZone(value.strip())
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(
                f"tz={value!r} is not a known time zone; use an IANA name such as "
                "'America/New_York' or 'UTC', a zoneinfo.ZoneInfo or a pytz zone"
            ) from exc
    if isinstance(value, ZoneInfo) and value.key:
        return LocalizingZone(value.key)
    if isinstance(value, tzinfo):
        return LocalizingTzinfo(value)
    raise ConfigError(
        f"tz={value!r} is not a time zone; use an IANA name such as 'America/New_York', a "
        "zoneinfo.ZoneInfo or a pytz zone"
    )
