"""Pure matching: what one instant of the seeded market does to one order.

The market is the simulator's own (:mod:`..quotes`): the last price follows each minute's
deterministic path, the ask equals the last, the bid is one cent below, and the displayed sizes
are the snapshot's (100-3,000 shares). Rules:

- Buys fill at the ask, sells at the bid, never at the mid. A limit buy fills when the ask is
  at or below the limit (at the ask: a gap through the limit improves the price), a limit sell
  when the bid is at or above it.
- Stops trigger on the last price (buy: last >= stop, sell: last <= stop), then work as a market
  order (STP, TRAIL) or as a limit (STOP_LIMIT at ``price``; TRAILLMT at the stop that
  triggered plus the ticket's ``price - auxPrice`` offset) from that same instant.
- Trailing stops ratchet every evaluated second: a sell stop follows ``last - amount`` (or
  ``last * (1 - pct/100)``, rounded to the cent) upwards only, a buy stop ``last + amount``
  downwards only. Without an initial stop (``price``/``auxPrice``) the first second sets it.
- **Partial fills** (deterministic): one evaluation fills at most the size displayed on the
  order's side at that second (ask size for buys, bid size for sells); the rest waits for the
  next second. Orders of 100 shares or fewer therefore always fill at once.
- Orders are evaluated on whole simulated seconds inside their trading hours: regular hours
  09:30-16:00 New York, or 04:00-20:00 with ``outsideRTH`` (market orders: regular hours only).

:func:`scan` finds the first second in a span at which something happens to an order; the
engine then applies :func:`evaluate` at that second. Both share the same code path, so a scan
and the step that follows always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..calendar import UTC, is_trading_day, locate, minute_time, session_range
from ..market import DayBars
from ..quotes import TopOfBook, path_price, top_of_book
from .tickets import STOP_TYPES, Ticket

__all__ = [
    "Outcome",
    "Progress",
    "Scan",
    "evaluate",
    "initial_progress",
    "minutes",
    "scan",
    "window_of",
]

_TRAILING = frozenset({"TRAIL", "TRAILLMT"})


@dataclass(frozen=True)
class Progress:
    """An order's matching state: ``triggered`` (stops elected; always True for other types),
    ``trail`` (trailing stop, cents), ``limit`` (working limit, cents; None = market) and
    ``remaining`` shares."""

    triggered: bool
    trail: int | None
    limit: int | None
    remaining: int


@dataclass(frozen=True)
class Outcome:
    """The result of one evaluated instant: the new progress and the fill (0 shares = none)."""

    progress: Progress
    fill_quantity: int = 0
    fill_price: int = 0

    @property
    def changed(self) -> bool:
        """True when the instant triggered the order or filled some of it."""
        return self.fill_quantity > 0


def window_of(ticket: Ticket) -> tuple[int, int]:
    """Minute indexes ``[first, end)`` (from 04:00 New York) in which ``ticket`` may trade."""
    return session_range(ticket.outside_rth and ticket.order_type != "MKT")


def _offset(ticket: Ticket, last: int) -> int:
    assert ticket.trailing_amt is not None
    if ticket.trailing_type == "%":
        return round(last * ticket.trailing_amt / 100.0)
    return int(ticket.trailing_amt)


def _stop(ticket: Ticket, trail: int | None, last: int) -> tuple[int, int | None]:
    """The stop in force at ``last`` and the trail after ratcheting (trailing types only)."""
    if ticket.order_type not in _TRAILING:
        stop = ticket.price if ticket.order_type == "STP" else ticket.aux_price
        assert stop is not None
        return stop, trail
    sell = ticket.side == "SELL"
    candidate = last - _offset(ticket, last) if sell else last + _offset(ticket, last)
    if trail is not None:
        candidate = max(trail, candidate) if sell else min(trail, candidate)
    return candidate, candidate


def evaluate(
    ticket: Ticket, progress: Progress, last: int, book: Callable[[], TopOfBook]
) -> Outcome:
    """Apply one instant with last price ``last`` (cents) and displayed sizes ``book()``."""
    buy = ticket.side == "BUY"
    triggered, trail, limit = progress.triggered, progress.trail, progress.limit
    if not triggered:
        stop, trail = _stop(ticket, trail, last)
        if not (last >= stop if buy else last <= stop):
            return Outcome(Progress(False, trail, limit, progress.remaining))
        triggered = True
        if ticket.order_type == "STOP_LIMIT":
            limit = ticket.price
        elif ticket.order_type == "TRAILLMT":
            assert ticket.price is not None and ticket.aux_price is not None
            limit = stop + ticket.price - ticket.aux_price
    after = Progress(triggered, trail, limit, progress.remaining)
    price = last if buy else max(1, last - 1)
    if limit is not None and (price > limit if buy else price < limit):
        return Outcome(after)
    sizes = book()
    quantity = min(progress.remaining, sizes.ask_size if buy else sizes.bid_size)
    left = Progress(triggered, trail, limit, progress.remaining - quantity)
    return Outcome(left, quantity, price)


def _may_act(ticket: Ticket, progress: Progress, low: int, high: int) -> bool:
    """False only when no second of a minute with this low/high can change the order."""
    buy = ticket.side == "BUY"
    if not progress.triggered:
        if ticket.order_type in _TRAILING:
            trail = progress.trail
            if trail is None:
                return True
            if buy:
                return high >= trail or low + _offset(ticket, low) < trail
            return low <= trail or high - _offset(ticket, high) > trail
        stop, _ = _stop(ticket, None, low)
        return high >= stop if buy else low <= stop
    if progress.limit is None:
        return True
    return low <= progress.limit if buy else high - 1 >= progress.limit


def minutes(start: int, end: int, window: tuple[int, int]) -> Iterator[tuple[date, int, int, int]]:
    """``(day, minute, first second, last second)`` of every minute of trading days whose
    seconds (whole epoch seconds ``start..end``, both inclusive) fall in ``window``."""
    if end < start:
        return
    first_min, end_min = window
    day = locate(datetime.fromtimestamp(start, UTC)).day
    last_day = locate(datetime.fromtimestamp(end, UTC)).day
    while day <= last_day:
        if is_trading_day(day):
            base = int(minute_time(day, 0).timestamp())
            lo = max(start, base + first_min * 60)
            hi = min(end, base + end_min * 60 - 1)
            second = lo
            while second <= hi:
                minute, offset = divmod(second - base, 60)
                stop = min(hi - base - minute * 60, 59)
                yield day, minute, offset, stop
                second = base + minute * 60 + stop + 1
        day += timedelta(days=1)


@dataclass(frozen=True)
class Scan:
    """First second (epoch) in a span at which an order triggers or fills (None: none), and
    its progress just before that second (or at the span's end when nothing happens)."""

    hit: int | None
    progress: Progress


def scan(
    seed: int,
    ticket: Ticket,
    instrument_day: Callable[[date], DayBars],
    progress: Progress,
    start: int,
    end: int,
) -> Scan:
    """Walk whole seconds ``start..end`` (epoch, inclusive) of ``ticket``'s trading hours."""
    window = window_of(ticket)
    for day, minute, first, last_second in minutes(start, end, window):
        bars = instrument_day(day)
        if not _may_act(ticket, progress, bars.low[minute], bars.high[minute]):
            continue
        o, h, l, c = bars.open[minute], bars.high[minute], bars.low[minute], bars.close[minute]  # noqa: E741
        for second in range(first, last_second + 1):
            price = path_price(o, h, l, c, second)

            def book(m: int = minute, s: int = second) -> TopOfBook:
                return top_of_book(seed, ticket.conid, m, s)

            outcome = evaluate(ticket, progress, price, book)
            if outcome.changed or outcome.progress.triggered != progress.triggered:
                epoch = int(minute_time(day, minute).timestamp()) + second
                return Scan(epoch, progress)
            progress = outcome.progress
    return Scan(None, progress)


def initial_progress(ticket: Ticket) -> Progress:
    """The progress of a newly working order."""
    triggered = ticket.order_type not in STOP_TYPES
    trail = None
    if ticket.order_type == "TRAIL":
        trail = ticket.price
    elif ticket.order_type == "TRAILLMT":
        trail = ticket.aux_price
    limit = ticket.price if ticket.order_type == "LMT" else None
    return Progress(triggered, trail, limit, ticket.quantity)
