"""Properties of the live bar builder on random snapshot sequences (hypothesis).

Gateway times only move forward (a step may be 0: a repeated ``_updated``); steps range from a
tenth of a second to three days, so sequences cross bar ends, session ends, nights, weekends
and the 2024 DST changes. Snapshots may be pre-flight, carry the prior close (``C``), lack a
price or a volume, or show the day volume reset; the builder may be reset (as after a lost
connection) in between. Whatever the sequence, for every timeframe and session setting:

- every bar it completes is valid (low <= open, close <= high; volume >= 0; finite; UTC);
- every bar is stamped at the start of its bucket of the exchange calendar
  (``models.calendar.bucket_at``) and is only completed once gateway time reached the
  bucket's end;
- its prices are prices the snapshots of that bucket showed (close = the last one);
- no bar is completed twice and bars come out in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from backtrader_ibkr_cp.live.builder import BarBuilder
from backtrader_ibkr_cp.models import Availability, Bar, Snapshot, Timeframe
from backtrader_ibkr_cp.models.calendar import bucket_at

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
CONID = 265598


@dataclass(frozen=True)
class Step:
    """One event: a snapshot ``seconds`` after the previous one, a flush, or a reset."""

    seconds: float
    kind: str  # "snapshot", "flush", "reset"
    price: float | None
    volume_change: int | None  # None: no volume field; negative: the day counter restarts
    prior_close: bool
    size: float | None


def _seconds(branch: int) -> st.SearchStrategy[float]:
    """Mostly seconds apart, sometimes minutes, rarely repeated times or long jumps."""
    if branch == 0:
        return st.just(0.0)
    if branch == 1:
        return st.floats(900.0, 3 * 86400.0)
    if branch <= 4:
        return st.floats(30.0, 900.0)
    return st.floats(0.1, 30.0)


steps = st.builds(
    Step,
    seconds=st.integers(0, 19).flatmap(_seconds),
    kind=st.sampled_from(("snapshot",) * 18 + ("flush", "reset")),
    price=st.one_of(st.none(), *[st.integers(9_000, 11_000).map(lambda c: c / 100)] * 6),
    volume_change=st.one_of(st.none(), st.just(-1), *[st.integers(0, 5_000)] * 6),
    prior_close=st.sampled_from((False,) * 15 + (True,)),
    size=st.one_of(st.none(), st.integers(1, 500).map(float)),
)
#: New York wall times of 2024 between 03:00 and 21:00 (pre-market to after hours), as UTC.
starts = st.builds(
    lambda day, minute: (
        datetime.combine(day, time(3, 0), tzinfo=NY) + timedelta(minutes=minute)
    ).astimezone(UTC),
    st.dates(min_value=date(2024, 1, 1), max_value=date(2024, 12, 28)),
    st.integers(0, 18 * 60),
)


@dataclass
class Seen:
    """A fresh snapshot the builder was given: its time and usable price (None without a
    price or with the prior close)."""

    time: datetime
    price: float | None


def run(
    timeframe: Timeframe, outside_rth: bool, start: datetime, events: list[Step]
) -> tuple[list[tuple[Bar, datetime]], list[Seen]]:
    """Feed ``events``; return each completed bar with the gateway time it completed at, and
    the snapshots given (times strictly increasing across the run)."""
    builder = BarBuilder(timeframe, outside_rth=outside_rth)
    # Longer bars, longer steps (capped: daily and longer bars still see intraday snapshots).
    scale = min(timeframe.duration.total_seconds() / 60.0, 30.0)
    now = start
    volume = 0.0
    out: list[tuple[Bar, datetime]] = []
    seen: list[Seen] = []
    for step in events:
        now += timedelta(seconds=step.seconds * scale)
        if step.kind == "reset":
            builder.reset()
            continue
        if step.kind == "flush":
            out.extend((bar, now) for bar in builder.flush(now))
            continue
        if step.volume_change is not None:
            volume = volume + step.volume_change if step.volume_change >= 0 else 0.0
        snapshot = Snapshot(
            CONID,
            timestamp=now,
            last=step.price,
            last_size=step.size,
            volume=volume if step.volume_change is not None else None,
            availability=Availability("RpB"),
            last_is_prior_close=step.prior_close,
        )
        # The builder's view: a pre-flight snapshot (no field) is ignored, a later one is fresh.
        if not snapshot.is_preflight and (not seen or now > seen[-1].time):
            usable = None if step.prior_close else step.price
            seen.append(Seen(now, usable))
        out.extend((bar, now) for bar in builder.update(snapshot))
    return out, seen


@settings(max_examples=200, deadline=None)
@given(
    timeframe=st.sampled_from(list(Timeframe)),
    outside_rth=st.booleans(),
    start=starts,
    events=st.lists(steps, min_size=40, max_size=250),
)
def test_completed_bars_are_valid_aligned_complete_unique_and_in_order(
    timeframe: Timeframe, outside_rth: bool, start: datetime, events: list[Step]
) -> None:
    completed, seen = run(timeframe, outside_rth, start, events)
    event(f"{timeframe.bar} {outside_rth}: {bool(completed)}")
    stamps = [bar.timestamp for bar, _ in completed]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # in order, once each
    for bar, completed_at in completed:
        assert bar.problems() == [], bar.describe()
        bucket = bucket_at(bar.timestamp, timeframe, outside_rth=outside_rth)
        assert bucket is not None and bucket.start == bar.timestamp  # aligned to the calendar
        assert completed_at >= bucket.end  # only completed bars
        prices = [
            s.price
            for s in seen
            if s.price is not None
            and bucket_at(s.time, timeframe, outside_rth=outside_rth) == bucket  # in session
        ]
        assert prices, "a bar without a snapshot price in its bucket"
        assert min(prices) <= bar.low and bar.high <= max(prices)
        assert bar.open in prices and bar.close == prices[-1]


@settings(max_examples=100, deadline=None)
@given(start=starts, events=st.lists(steps, max_size=60))
def test_a_bar_is_built_only_from_its_start(start: datetime, events: list[Step]) -> None:
    """The bar forming when the builder starts (or restarts) is never completed: its first
    trades were not seen."""
    timeframe = Timeframe.MINUTE_5
    builder = BarBuilder(timeframe)
    now = start
    since: datetime | None = None
    for step in events:
        now += timedelta(seconds=step.seconds or 0.5)
        if step.kind == "reset":
            builder.reset()
            since = None
            continue
        snapshot = Snapshot(
            CONID,
            timestamp=now,
            last=step.price,
            volume=float(abs(step.volume_change or 0)),
            availability=Availability("RpB"),
        )
        bars = builder.update(snapshot)
        if since is None:
            since = builder.watching_since
        for bar in bars:
            assert since is not None and bar.timestamp > since
