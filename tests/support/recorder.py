"""One strategy that records what a run shows it, and a guarded ``cerebro.run``."""

from __future__ import annotations

import threading
from typing import Any

import backtrader as bt

from .instants import UTC
from .truth import Row


class Recorder(bt.Strategy):  # type: ignore[misc]
    """Records every new bar of every data (UTC lines stamp, OHLCV), the data notifications
    and the store messages.

    ``live_bars``: stop the run after every data delivered that many bars while LIVE.
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


def run(cerebro: bt.Cerebro, *, max_seconds: float = 30.0, **kwargs: Any) -> Any:
    """Run ``cerebro`` (one strategy) and return the strategy; a live run still going after
    ``max_seconds`` is stopped (the test then fails on its assertions, not on a hang)."""
    guard = threading.Timer(max_seconds, cerebro.runstop)
    guard.start()
    try:
        (strategy,) = cerebro.run(**kwargs)
    finally:
        guard.cancel()
        guard.join()
    return strategy
