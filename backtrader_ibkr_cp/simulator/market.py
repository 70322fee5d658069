"""Seeded, deterministic one-minute bars: any trading day is generated on its own.

A day's 960 one-minute bars (04:00-20:00 New York) depend only on ``(seed, instrument, date)``:

- Each trading day has an *anchor*: its regular-hours close (the 15:59 bar's close). The anchor's
  log price is the instrument's base level plus multi-scale "value noise" (smoothly interpolated
  seeded knots every 7, 30, 120 and 500 calendar days) plus a seeded daily term, so any day's
  anchor costs O(1) and neighbouring days are continuous without generating the days between.
- The day opens at 04:00 at the previous trading day's anchor times a small seeded overnight gap,
  follows a Brownian bridge (with a U-shaped intraday volatility profile) to its anchor at 16:00,
  then a quieter bridge to a seeded after-hours close at 20:00.
- Prices are integer cents (> 0); ``low <= open, close <= high`` always; a minute opens at the
  previous minute's close. Volumes are whole shares, higher at the open and close, about 3% of
  the regular-hours level per minute outside regular hours.

Seeds are strings such as ``"0:265598:2024-03-04"`` fed to :class:`random.Random` (stable across
processes; Python's ``hash()`` is never used). Generated days sit in an LRU cache.
"""

from __future__ import annotations

import math
import random
import threading
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from .calendar import DAY_MINUTES, RTH_END, RTH_START, previous_trading_day
from .instruments import SimInstrument

__all__ = ["DayBars", "MarketModel"]

# Value-noise scales: (knot spacing in calendar days, amplitude of the log price).
_SCALES = ((7, 0.025), (30, 0.05), (120, 0.10), (500, 0.18))
_DAILY_NOISE = 0.011  # standard deviation of the seeded daily log term
_GAP = 0.005  # standard deviation of the overnight gap (log)
_AFTER_HOURS = 0.004  # standard deviation of 16:00 -> 20:00 (log)
_RTH_MINUTES = RTH_END - RTH_START
_TAU = 2.0 * math.pi


def _profiles() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-minute volatility multipliers and volume weights (RTH volume weights sum to 1)."""
    sigma: list[float] = []
    weight: list[float] = []
    for index in range(DAY_MINUTES):
        if index < RTH_START:  # pre-market, busier towards 09:30
            sigma.append(0.35)
            weight.append(0.015 + 0.025 * index / RTH_START)
        elif index < RTH_END:
            t = index - RTH_START
            sigma.append(1.0 + 1.2 * math.exp(-t / 25.0) + 0.5 * math.exp(-(389 - t) / 20.0))
            weight.append(1.0 + 3.0 * math.exp(-t / 15.0) + 2.5 * math.exp(-(389 - t) / 12.0))
        else:  # after hours, fading
            t = index - RTH_END
            sigma.append(0.3)
            weight.append(0.04 * math.exp(-t / 90.0) + 0.01)
    rth_total = sum(weight[RTH_START:RTH_END]) / _RTH_MINUTES
    return tuple(sigma), tuple(w / rth_total / _RTH_MINUTES for w in weight)


_SIGMA_SHAPE, _VOLUME_SHAPE = _profiles()


@lru_cache(maxsize=1 << 16)
def _knot(seed: int, conid: int, spacing: int, index: int) -> float:
    """Seeded value in [-1, 1) at knot ``index`` of the noise with ``spacing`` days."""
    return random.Random(f"{seed}:{conid}:knot:{spacing}:{index}").random() * 2.0 - 1.0


@lru_cache(maxsize=1 << 16)
def _anchor_cents(seed: int, conid: int, base_price: float, ordinal: int) -> int:
    """Regular-hours close (cents) of the trading day with proleptic ordinal ``ordinal``."""
    level = math.log(base_price)
    for spacing, amplitude in _SCALES:
        knot, offset = divmod(ordinal, spacing)
        s = offset / spacing
        s = s * s * (3.0 - 2.0 * s)
        a = _knot(seed, conid, spacing, knot)
        b = _knot(seed, conid, spacing, knot + 1)
        level += amplitude * (a + (b - a) * s)
    level += random.Random(f"{seed}:{conid}:{ordinal}:close").gauss(0.0, _DAILY_NOISE)
    return max(1, round(math.exp(level) * 100.0))


@lru_cache(maxsize=4096)
def _instrument_profile(seed: int, conid: int, base_price: float) -> tuple[float, float]:
    """(daily volatility, average regular-hours daily volume in shares) of an instrument."""
    rng = random.Random(f"{seed}:{conid}:profile")
    volatility = 0.011 + 0.012 * rng.random()
    # Dollar volume between ~$1.5bn and ~$12bn a day, so cheaper stocks trade more shares.
    dollars = math.exp(math.log(1.5e9) + rng.random() * math.log(8.0))
    return volatility, max(200_000.0, dollars / base_price)


@dataclass(frozen=True)
class DayBars:
    """One trading day's 960 one-minute bars (index 0 = 04:00 New York).

    ``open``/``high``/``low``/``close`` are integer cents, ``volume`` whole shares;
    ``cum_volume[i]`` is the volume of minutes ``0 .. i-1`` (``cum_volume[960]`` the day's
    total). ``prior_close`` is the previous trading day's regular-hours close in cents.
    """

    day: date
    prior_close: int
    open: array[int]
    high: array[int]
    low: array[int]
    close: array[int]
    volume: array[int]
    cum_volume: array[int]

    def aggregate(self, first: int, end: int) -> tuple[int, int, int, int, int]:
        """``(open, high, low, close, volume)`` of minutes ``first .. end-1`` (non-empty)."""
        return (
            self.open[first],
            max(self.high[first:end]),
            min(self.low[first:end]),
            self.close[end - 1],
            self.cum_volume[end] - self.cum_volume[first],
        )


def _bridge(rng: random.Random, start: float, end: float, sigmas: list[float]) -> list[float]:
    """Log-price path of len(sigmas) steps from ``start`` ending exactly at ``end``.

    The increments are N(0, sigma_i); the walk is pinned to ``end`` by subtracting its final
    error in proportion to the variance accumulated so far (a time-changed Brownian bridge).
    """
    uniform = rng.random
    walk: list[float] = []
    variance: list[float] = []
    w = v = 0.0
    spare = 0.0
    have_spare = False
    for sigma in sigmas:
        if have_spare:
            z = spare
            have_spare = False
        else:  # Box-Muller: two standard normals from two uniforms
            radius = math.sqrt(-2.0 * math.log(1.0 - uniform()))
            angle = _TAU * uniform()
            z = radius * math.cos(angle)
            spare = radius * math.sin(angle)
            have_spare = True
        w += sigma * z
        v += sigma * sigma
        walk.append(w)
        variance.append(v)
    correction = (w - (end - start)) / v
    return [start + w_i - var_i * correction for w_i, var_i in zip(walk, variance, strict=True)]


def generate_day(seed: int, instrument: SimInstrument, day: date) -> DayBars:
    """Generate ``instrument``'s one-minute bars for trading day ``day`` (see module doc)."""
    conid, base = instrument.conid, instrument.base_price
    volatility, daily_volume = _instrument_profile(seed, conid, base)
    rng = random.Random(f"{seed}:{conid}:{day.isoformat()}")
    prior = _anchor_cents(seed, conid, base, previous_trading_day(day).toordinal())
    anchor = _anchor_cents(seed, conid, base, day.toordinal())
    minute_sigma = volatility / math.sqrt(_RTH_MINUTES)
    sigmas = [minute_sigma * shape for shape in _SIGMA_SHAPE]

    log_open = math.log(prior / 100.0) + rng.gauss(0.0, _GAP)
    log_anchor = math.log(anchor / 100.0)
    log_final = log_anchor + rng.gauss(0.0, _AFTER_HOURS)
    path = _bridge(rng, log_open, log_anchor, sigmas[:RTH_END])
    path += _bridge(rng, log_anchor, log_final, sigmas[RTH_END:])

    exp = math.exp
    close = array("q", [round(exp(p) * 100.0) or 1 for p in path])
    close[RTH_END - 1] = anchor
    opens = array("q", close)
    opens[1:] = close[:-1]
    opens[0] = max(1, round(exp(log_open) * 100.0))
    size = array("q", bytes(8 * DAY_MINUTES))
    high, low, volume = array("q", size), array("q", size), array("q", size)
    cum = array("q", bytes(8 * (DAY_MINUTES + 1)))
    uniform = rng.random
    day_volume = daily_volume * exp(rng.gauss(0.0, 0.25))
    total = 0
    for i in range(DAY_MINUTES):
        o = opens[i]
        c = close[i]
        wick = c * sigmas[i] * 0.8
        if o > c:
            high[i] = o + int(wick * uniform() + 0.5)
            bottom = c - int(wick * uniform() + 0.5)
        else:
            high[i] = c + int(wick * uniform() + 0.5)
            bottom = o - int(wick * uniform() + 0.5)
        low[i] = bottom if bottom > 0 else 1
        shares = int(day_volume * _VOLUME_SHAPE[i] * (0.35 + 1.3 * uniform())) or 1
        volume[i] = shares
        total += shares
        cum[i + 1] = total
    return DayBars(day, prior, opens, high, low, close, volume, cum)


class MarketModel:
    """Thread-safe source of :class:`DayBars` with an LRU cache of generated days.

    ``seed`` selects the market; ``cache_days`` bounds memory (~40 KB per cached day).
    Day summaries (open, high, low, close, volume of a whole session) are cached separately
    and much longer, so long daily/weekly/monthly histories are cheap after the first request.
    """

    def __init__(self, seed: int = 0, cache_days: int = 256, cache_summaries: int = 200_000):
        self.seed = seed
        self._cache_days = cache_days
        self._cache_summaries = cache_summaries
        self._lock = threading.Lock()
        self._days: OrderedDict[tuple[int, date], DayBars] = OrderedDict()
        self._summaries: OrderedDict[tuple[int, date, bool], tuple[int, int, int, int, int]] = (
            OrderedDict()
        )

    def day(self, instrument: SimInstrument, day: date) -> DayBars:
        """The bars of ``day`` (a trading day) for ``instrument``; generated once, then cached."""
        key = (instrument.conid, day)
        with self._lock:
            cached = self._days.get(key)
            if cached is not None:
                self._days.move_to_end(key)
                return cached
        bars = generate_day(self.seed, instrument, day)
        with self._lock:
            self._days[key] = bars
            while len(self._days) > self._cache_days:
                self._days.popitem(last=False)
        return bars

    def summary(
        self, instrument: SimInstrument, day: date, outside_rth: bool
    ) -> tuple[int, int, int, int, int]:
        """``(open, high, low, close, volume)`` of ``day``'s whole RTH or ETH session."""
        key = (instrument.conid, day, outside_rth)
        with self._lock:
            cached = self._summaries.get(key)
            if cached is not None:
                return cached
        bars = self.day(instrument, day)
        value = (
            bars.aggregate(0, DAY_MINUTES) if outside_rth else bars.aggregate(RTH_START, RTH_END)
        )
        with self._lock:
            self._summaries[key] = value
            while len(self._summaries) > self._cache_summaries:
                self._summaries.popitem(last=False)
        return value

    def prior_close(self, instrument: SimInstrument, day: date) -> int:
        """Regular-hours close (cents) of the last trading day before ``day`` (any date)."""
        previous = previous_trading_day(day)
        return _anchor_cents(
            self.seed, instrument.conid, instrument.base_price, previous.toordinal()
        )
