"""``fill()`` with a fetch function: only what is missing is fetched, refresh replaces."""

from __future__ import annotations

from pathlib import Path

from backtrader_ibkr_cp import Bar, BarStore
from backtrader_ibkr_cp.barstore import Span, fill, to_fetch
from tests.barstore.barstore_helpers import AAPL, LATER, make_bars, utc

WEEK = (utc(2024, 3, 4), utc(2024, 3, 9))


def test_fill_fetches_only_the_missing_spans_and_refresh_replaces(tmp_path: Path) -> None:
    store = BarStore(tmp_path, clock=lambda: LATER)
    version = {"now": 0}
    asked: list[Span] = []

    def fetch(span: Span) -> list[Bar]:
        asked.append(span)
        return make_bars("5min", span.start, span.end, version=version["now"])

    tuesday = (utc(2024, 3, 5), utc(2024, 3, 6))
    store.write(AAPL, "5min", make_bars("5min", *tuesday), span=tuesday)
    report = fill(store, AAPL, "5min", *WEEK, fetch)
    assert asked == [Span(WEEK[0], tuesday[0]), Span(tuesday[1], WEEK[1])]
    assert report.pieces == asked and report.bars == 4 * 78
    assert store.read(AAPL, "5min") == make_bars("5min", *WEEK)

    asked.clear()
    assert fill(store, AAPL, "5min", *WEEK, fetch).pieces == [] and asked == []

    version["now"] = 1  # IBKR corrected every bar
    halves: list[tuple[Span, int]] = []
    report = fill(
        store, AAPL, "5min", *WEEK, fetch, refresh=True,
        split=lambda s: [Span(s.start, utc(2024, 3, 6)), Span(utc(2024, 3, 6), s.end)],
        on_written=lambda piece, count: halves.append((piece, count)),
    )  # fmt: skip
    assert [count for _, count in halves] == [2 * 78, 3 * 78]
    assert store.read(AAPL, "5min") == make_bars("5min", *WEEK, version=1)


def test_to_fetch_stops_at_the_horizon(tmp_path: Path) -> None:
    store = BarStore(tmp_path, settle=0)
    now = utc(2024, 3, 6, 15, 2)  # 10:02 New York: the 10:00 bar is forming
    expected = [Span(utc(2024, 3, 6), utc(2024, 3, 6, 15))]
    day = (utc(2024, 3, 6), utc(2024, 3, 7))
    assert to_fetch(store, AAPL, "5min", *day, now=now) == expected
    assert to_fetch(store, AAPL, "5min", *day, now=now, refresh=True) == expected
    assert to_fetch(store, AAPL, "5min", utc(2024, 3, 9), utc(2024, 3, 10), now=LATER) == []
