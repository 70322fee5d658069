"""When orders may trade, expire and take part in auctions (epoch seconds, New York calendar).

All instants are whole epoch seconds. A trading window is the regular session 09:30-16:00 New
York, or 04:00-20:00 for ``outsideRTH`` orders (never for MKT); its end is exclusive, so an
RTH order can trade at 15:59:59 but not at 16:00:00.

- DAY orders expire at the end of their window on the trading day they were placed, or on the
  next trading day when placed after it (or on a weekend): 16:00:00, or 20:00:00 with
  ``outsideRTH`` (undocumented at IBKR; the simulator lets such an order live through the
  after-hours session it asked for).
- GTD orders expire at their ``goodTillDate``: a date means that day's window end, a UTC time
  that time (rounded up to the whole second).
- MOC orders are filled at the next 16:00:00 close of a trading day at the session's closing
  price; OPG orders at the next 09:30:00 open at the opening price.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

from ..calendar import RTH_END, RTH_START, UTC, is_trading_day, locate, minute_time
from .matching import window_of
from .tickets import Ticket

__all__ = ["auction_at", "expires_at", "in_window", "next_edge", "utc"]


def utc(epoch: float) -> datetime:
    """The UTC datetime of ``epoch`` seconds."""
    return datetime.fromtimestamp(epoch, UTC)


def _at(day: date, minute: int) -> int:
    return int(minute_time(day, minute).timestamp())


def _trading_day_from(day: date) -> date:
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def in_window(ticket: Ticket, epoch: float) -> bool:
    """True when ``ticket`` may trade at ``epoch`` (its window on a trading day)."""
    moment = locate(utc(epoch))
    first, end = window_of(ticket)
    return moment.trading and first <= moment.minute < end


def next_edge(ticket: Ticket, epoch: int) -> int:
    """The first window start or end strictly after ``epoch`` for ``ticket``."""
    first, end = window_of(ticket)
    day = locate(utc(epoch)).day
    while True:
        if is_trading_day(day):
            for minute in (first, end):
                edge = _at(day, minute)
                if edge > epoch:
                    return edge
        day += timedelta(days=1)


def _next_instant(epoch: float, minute: int) -> int:
    """The first ``minute`` mark (minute index from 04:00) of a trading day at/after epoch."""
    day = _trading_day_from(locate(utc(epoch)).day)
    while _at(day, minute) < epoch:
        day = _trading_day_from(day + timedelta(days=1))
    return _at(day, minute)


def expires_at(ticket: Ticket, placed: float) -> int | None:
    """When ``ticket`` placed at ``placed`` expires (None: never, or handled elsewhere)."""
    _, end = window_of(ticket)
    if ticket.order_type == "MOC" or ticket.tif in ("OPG", "IOC", "GTC"):
        return None
    if ticket.tif == "DAY":
        return _next_instant(math.floor(placed) + 1, end)
    good_till = ticket.good_till
    if isinstance(good_till, datetime):
        return math.ceil(good_till.timestamp())
    if isinstance(good_till, date):
        return _at(_trading_day_from(good_till), end)
    return None


def auction_at(ticket: Ticket, placed: float) -> int | None:
    """The auction instant of a MOC (next 16:00:00) or OPG (next 09:30:00) order, else None."""
    after = math.floor(placed) + 1
    if ticket.order_type == "MOC":
        return _next_instant(after, RTH_END)
    if ticket.tif == "OPG":
        return _next_instant(after, RTH_START)
    return None
