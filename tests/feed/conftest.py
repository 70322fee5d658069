"""Cerebro-level fixtures: simulators, a recording strategy, truth comparison helpers."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from typing import Any

import backtrader as bt
import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimBar
from backtrader_ibkr_cp.store import IBKRCPStore

UTC = dt.timezone.utc
#: Saturday 2024-03-16 12:00 UTC: every bar of the week before is complete.
WEEKEND = dt.datetime(2024, 3, 16, 12, 0, tzinfo=UTC)
#: Tuesday 2024-03-05 10:00:30 New York (EST): regular hours.
TUESDAY_MORNING = dt.datetime(2024, 3, 5, 15, 0, 30, tzinfo=UTC)
#: Simulated seconds per real second in live tests: a 1-minute bar every 0.5 s.
LIVE_SPEED = 120.0


@pytest.fixture(autouse=True)
def fresh_stores() -> Iterator[None]:
    """Each test gets its own stores (and stops whatever a failing test left running)."""
    IBKRCPStore._reset()
    yield
    IBKRCPStore._reset()


@pytest.fixture
def frozen_sim() -> Iterator[GatewaySimulator]:
    """A simulator with its clock stopped on a weekend (history only)."""
    with GatewaySimulator(seed=11, speed=0, start=WEEKEND, penalty_seconds=5) as sim:
        yield sim


@pytest.fixture
def live_sim() -> Iterator[GatewaySimulator]:
    """A simulator running LIVE_SPEED times faster than real time, mid-session."""
    with GatewaySimulator(
        seed=5, speed=LIVE_SPEED, start=TUESDAY_MORNING, penalty_seconds=5
    ) as sim:
        yield sim


Row = tuple[dt.datetime, float, float, float, float, float]


class Recorder(bt.Strategy):  # type: ignore[misc]
    """Records every new bar of every data (UTC, OHLCV), notifications and store messages.

    ``live_bars``: stop the run after that many bars delivered while every data is LIVE.
    """

    params = (("live_bars", None),)

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {d._name: [] for d in self.datas}
        self.live_rows: dict[str, list[Row]] = {d._name: [] for d in self.datas}
        self.statuses: list[tuple[str, str]] = []
        self.messages: list[str] = []
        self._live: set[str] = set()

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        name = data._getstatusname(status)
        self.statuses.append((data._name, name))
        if name == "LIVE":
            self._live.add(data._name)
        else:
            self._live.discard(data._name)

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.messages.append(str(msg))

    def prenext(self) -> None:
        self.next()

    def next(self) -> None:
        for data in self.datas:
            if not len(data):
                continue
            rows = self.rows[data._name]
            when = bt.num2date(data.datetime[0]).replace(tzinfo=UTC)
            if rows and rows[-1][0] == when:
                continue
            row = (when, data.open[0], data.high[0], data.low[0], data.close[0], data.volume[0])
            rows.append(row)
            if data._name in self._live:
                self.live_rows[data._name].append(row)
        limit = self.p.live_bars
        if limit is not None and all(len(r) >= limit for r in self.live_rows.values()):
            self.env.runstop()


def truth_rows(
    bars: list[SimBar], stamp: Callable[[SimBar], dt.datetime] | None = None
) -> list[Row]:
    """``sim.truth`` bars as recorded rows (``stamp`` maps a bar to its lines time)."""
    return [
        (
            stamp(b) if stamp else b.timestamp.astimezone(UTC),
            b.open,
            b.high,
            b.low,
            b.close,
            b.volume,
        )
        for b in bars
    ]


@pytest.fixture
def recorder() -> type[Recorder]:
    return Recorder


def run(cerebro: bt.Cerebro, *, max_seconds: float = 30.0, **kwargs: Any) -> Recorder:
    """Run ``cerebro`` (one strategy) and return the strategy; a live run still going after
    ``max_seconds`` is stopped (the test then fails on its assertions, not on a hang)."""
    guard = threading.Timer(max_seconds, cerebro.runstop)
    guard.start()
    try:
        (strategy,) = cerebro.run(**kwargs)
    finally:
        guard.cancel()
        guard.join()
    return strategy  # type: ignore[no-any-return]


@pytest.fixture
def run_cerebro() -> Callable[[bt.Cerebro], Recorder]:
    return run


@pytest.fixture
def to_rows() -> Callable[..., list[Row]]:
    return truth_rows
