"""Prices inside a minute and the day's running state at any instant.

Each one-minute bar has a deterministic price path that agrees with its OHLC: the open at 0 s,
the first extreme at 15 s, the second at 35 s, the close from 55 s to 60 s, linear in between
and rounded to cents. The low comes first when the bar closes at or above its open, the high
first otherwise. The minute's volume trades pro rata over its 60 seconds (whole shares,
rounded down), so at a minute's end the cumulative volume is exactly the completed bars' sum.

:func:`market_state` gives what a snapshot shows at an instant: before 04:00 New York (and on
weekends) no trade yet today, so ``last`` is the prior close; from 04:00 to 20:00 the path
price; after 20:00 the day's last close.

:func:`top_of_book` gives the displayed sizes at a whole second and :func:`quote_at` the full
quote (bid one cent below the ask, the ask equal to the last price), both shared by the snapshot
endpoint and the order engine so an order fills at exactly what a snapshot shows.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import datetime

from .calendar import DAY_MINUTES, locate
from .instruments import SimInstrument
from .market import DayBars, MarketModel

__all__ = [
    "MarketState",
    "Minute",
    "Quote",
    "TopOfBook",
    "market_state",
    "partial_minute",
    "path_price",
    "quote_at",
    "top_of_book",
]

#: (o, h, l, c, v): cents and shares.
Minute = tuple[int, int, int, int, int]

_FIRST_EXTREME = 15.0
_SECOND_EXTREME = 35.0
_CLOSE = 55.0
_LAST_SIZES = (1, 5, 10, 25, 50, 100, 100, 100, 100, 200, 200, 300, 500, 1000)


def _points(o: int, h: int, l: int, c: int) -> tuple[tuple[float, int], ...]:  # noqa: E741
    first, second = (l, h) if c >= o else (h, l)
    return ((0.0, o), (_FIRST_EXTREME, first), (_SECOND_EXTREME, second), (_CLOSE, c))


def path_price(o: int, h: int, l: int, c: int, second: float) -> int:  # noqa: E741
    """Price in cents ``second`` seconds (0 <= s <= 60) into a minute with this OHLC."""
    points = _points(o, h, l, c)
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        if second < t1:
            return round(p0 + (p1 - p0) * (second - t0) / (t1 - t0))
    return c


def partial_minute(bar: Minute, second: float) -> Minute:
    """The minute ``bar`` as it stands ``second`` seconds (0 < s < 60) after it opened."""
    o, h, l, c, v = bar  # noqa: E741
    price = path_price(o, h, l, c, second)
    seen = [p for t, p in _points(o, h, l, c) if t <= second]
    seen.append(price)
    return (o, max(seen), min(seen), price, int(v * second / 60.0))


def minute_of(bars: DayBars, index: int) -> Minute:
    """Minute ``index`` of ``bars`` as an ``(o, h, l, c, v)`` tuple."""
    return (
        bars.open[index],
        bars.high[index],
        bars.low[index],
        bars.close[index],
        bars.volume[index],
    )


@dataclass(frozen=True)
class MarketState:
    """What is known about an instrument's day at one instant (cents and shares).

    ``traded`` is False before the day's first trade (before 04:00 New York, or a weekend);
    then ``last`` is the prior close and ``day_open``/``day_high``/``day_low`` are None and
    ``volume`` is 0. ``volume`` is the day's cumulative volume from 04:00.
    ``prior_close`` is the previous trading day's regular-hours close.
    """

    traded: bool
    last: int
    prior_close: int
    day_open: int | None
    day_high: int | None
    day_low: int | None
    volume: int
    minute: int
    second: float


def market_state(market: MarketModel, instrument: SimInstrument, instant: datetime) -> MarketState:
    """The market state of ``instrument`` at ``instant`` (UTC)."""
    moment = locate(instant)
    prior = market.prior_close(instrument, moment.day)
    if not moment.trading or moment.minute < 0:
        return MarketState(False, prior, prior, None, None, None, 0, moment.minute, moment.second)
    bars = market.day(instrument, moment.day)
    if moment.minute >= DAY_MINUTES:
        o, h, l, c, v = bars.aggregate(0, DAY_MINUTES)  # noqa: E741
        return MarketState(True, c, prior, o, h, l, v, moment.minute, moment.second)
    index = moment.minute
    _, ph, pl, price, pv = partial_minute(minute_of(bars, index), moment.second)
    high, low = ph, pl
    if index:
        high = max(high, max(bars.high[:index]))
        low = min(low, min(bars.low[:index]))
    volume = bars.cum_volume[index] + pv
    return MarketState(True, price, prior, bars.open[0], high, low, volume, index, moment.second)


@dataclass(frozen=True)
class TopOfBook:
    """Displayed sizes (shares) at one whole second: ask, bid and last trade size."""

    ask_size: int
    bid_size: int
    last_size: int


def top_of_book(seed: int, conid: int, minute: int, second: int) -> TopOfBook:
    """Seeded sizes of ``conid`` in second ``second`` of minute ``minute`` (100-3,000 shares)."""
    rng = random.Random(f"{seed}:{conid}:{minute}:{second}")
    ask = 100 * rng.randint(1, 30)
    bid = 100 * rng.randint(1, 30)
    return TopOfBook(ask, bid, rng.choice(_LAST_SIZES))


@dataclass(frozen=True)
class Quote:
    """The quote at one instant (cents and shares); ``bid == ask - 1`` (at least 1 cent)."""

    last: int
    bid: int
    ask: int
    bid_size: int
    ask_size: int


def quote_at(bars: DayBars, seed: int, conid: int, minute: int, second: float) -> Quote:
    """The quote ``second`` seconds (0 <= s < 60) into minute ``minute`` (0-959) of ``bars``."""
    last = path_price(
        bars.open[minute], bars.high[minute], bars.low[minute], bars.close[minute], second
    )
    book = top_of_book(seed, conid, minute, int(second))
    return Quote(last, max(1, last - 1), last, book.bid_size, book.ask_size)
