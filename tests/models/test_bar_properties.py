"""Property tests: Bar.problems and BarValidator invariants on arbitrary series."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_ibkr_cp.errors import DataIntegrityError
from backtrader_ibkr_cp.models.bar import Bar, BarValidator, InvalidBar

BASE = datetime(2024, 1, 2, 14, 30, tzinfo=timezone.utc)
prices = st.floats(min_value=-5, max_value=500) | st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def bars(draw: st.DrawFn) -> Bar:
    minute = draw(st.integers(0, 20))  # few timestamps: repeats and conflicts are likely
    if draw(st.booleans()):  # a well-formed bar
        low = draw(st.floats(1, 100))
        high = low + draw(st.floats(0, 10))
        open_ = draw(st.floats(low, high))
        close = draw(st.floats(low, high))
        volume = float(draw(st.integers(0, 3)))
    else:
        open_, high, low, close = (draw(prices) for _ in range(4))
        volume = draw(st.floats(-1, 3) | st.just(math.nan))
    return Bar(BASE + timedelta(minutes=minute), open_, high, low, close, volume)


@settings(max_examples=300, deadline=None)
@given(st.lists(bars() | st.sampled_from([Bar(BASE, 1, 2, 1, 2, 1)]), max_size=30))
def test_validator_invariants(series: list[Bar]) -> None:
    rejected: list[InvalidBar] = []
    validator = BarValidator(on_invalid=rejected.append)
    out = validator.validate(series)
    stamps = [bar.timestamp for bar in out]
    assert stamps == sorted(set(stamps)), "sorted with unique timestamps"
    assert all(bar.is_valid() for bar in out)
    assert all(bar in series for bar in out)
    assert len(series) == len(out) + validator.dropped + validator.repeated
    assert len(rejected) == validator.dropped
    first_valid: dict[datetime, Bar] = {}
    for bar in series:
        if bar.is_valid():
            first_valid.setdefault(bar.timestamp, bar)
    assert out == [first_valid[t] for t in sorted(first_valid)]


@given(st.lists(bars(), max_size=20), st.integers(0, 20))
def test_after_skips_delivered_bars(series: list[Bar], minute: int) -> None:
    after = BASE + timedelta(minutes=minute)
    out = BarValidator().validate(series, after=after)
    assert all(bar.timestamp > after for bar in out)


@given(bars())
def test_problems_match_the_ohlc_rules(bar: Bar) -> None:
    values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    ok = (
        all(math.isfinite(v) for v in values)
        and bar.volume >= 0
        and bar.low <= min(bar.open, bar.close)
        and max(bar.open, bar.close) <= bar.high
        and bar.low >= 0
    )
    assert bar.is_valid() is ok
    if not ok:
        with pytest.raises(DataIntegrityError, match="invalid bar"):
            bar.validate()


def test_naive_or_non_utc_timestamps_are_problems() -> None:
    naive = Bar(datetime(2024, 1, 2), 1, 1, 1, 1, 0)
    shifted = Bar(datetime(2024, 1, 2, tzinfo=timezone(timedelta(hours=-5))), 1, 1, 1, 1, 0)
    assert naive.problems() == ["timestamp is not tz-aware UTC"]
    assert shifted.problems() == ["timestamp is not tz-aware UTC"]


def test_strict_validator_raises() -> None:
    with pytest.raises(DataIntegrityError, match="high 1 is below low 2"):
        BarValidator(strict=True).validate([Bar(BASE, 1, 1, 2, 1, 0)])
