"""The pieces of the one-pass preload: backtrader's date numbers, vectorised bit for bit, and
lines appended at once exactly as ``load()`` bar by bar leaves them.

Bug (failed before the fix): ``BarColumns.bt_datetime`` computed ``ms / 86400000 + 719163``,
which differs from ``backtrader.date2num`` (an exactly rounded ``math.fsum`` of the day and
its hour, minute, second and microsecond fractions) in the last bit for about 1 instant in
120 that is not on a whole minute, so a store-fed feed could show a different ``datetime``
than the same bar fed bar by bar.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import backtrader as bt
import numpy as np
import pytest
from backtrader.utils import date2num

from backtrader_ibkr_cp.barstore import BarColumns
from backtrader_ibkr_cp.barstore.columns import bt_date_numbers
from backtrader_ibkr_cp.bt.preload import LINES, LineBars, append_bars, plain_lines
from backtrader_ibkr_cp.models import Timeframe

EPOCH = dt.datetime(1970, 1, 1)


def reference(ms: np.ndarray) -> np.ndarray:
    return np.array([date2num(EPOCH + dt.timedelta(milliseconds=int(t))) for t in ms])


def test_date_numbers_equal_date2num_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    anywhen = np.sort(rng.integers(0, 4_000_000_000_000, 50_000))  # 1970-2096, any ms
    edges = np.array([0, 86_399_999, 1_704_205_800_000, 1_704_239_999_999, 32_503_680_000_000])
    for ms in (anywhen, edges, anywhen // 60_000 * 60_000):
        columns = BarColumns(ms, *(np.zeros(ms.size),) * 5, timeframe=Timeframe.MINUTE_5)
        assert columns.bt_datetime().tobytes() == reference(ms).tobytes()
    outside = np.array([-40_000_000_000_000, 50_000_000_000_000])  # years 702 and 3554
    assert bt_date_numbers(outside).tobytes() == reference(outside).tobytes()


class Rows(bt.feed.DataBase):  # type: ignore[misc]
    """Loads ``rows`` bar by bar with IBKRCPData's rule: a bar stamped at or before the
    previous one is dropped unless ``latethrough``."""

    params = (("rows", ()), ("latethrough", False))

    def start(self) -> None:
        super().start()
        self._pending = list(self.p.rows)
        self._last_num: float | None = None

    def _load(self) -> bool:
        while self._pending:
            num, *prices = self._pending.pop(0)
            if self._last_num is not None and num <= self._last_num and not self.p.latethrough:
                continue
            for name, value in zip(LINES, (num, *prices, 0.0), strict=True):
                getattr(self.lines, name)[0] = value
            self._last_num = num
            return True
        return False


def started(rows: list[tuple[float, ...]], **params: Any) -> Any:
    cerebro = bt.Cerebro()
    data = Rows(rows=rows, **params)
    cerebro.adddata(data)
    data.reset()
    data._start()
    return data


def state(data: Any) -> list[tuple[bytes, int, int, int]]:
    lines = [getattr(data.lines, name) for name in LINES]
    return [(bytes(line.array), line.idx, line.lencount, line.extension) for line in lines]


@pytest.mark.parametrize("latethrough", [False, True])
@pytest.mark.parametrize(
    ("fromdate", "todate"),
    [(None, None), (dt.datetime(2024, 3, 4, 15), dt.datetime(2024, 3, 4, 18)),
     (dt.datetime(2024, 3, 5), None)],
)  # fmt: skip
def test_appending_at_once_leaves_the_lines_as_loading_bar_by_bar(
    latethrough: bool, fromdate: dt.datetime | None, todate: dt.datetime | None
) -> None:
    base = date2num(dt.datetime(2024, 3, 4, 14, 35))
    step = 5 / 1440
    order = [0, 1, 2, 2, 1, 3, 5, 4, 6, 7, 40, 8, 9, 60, 61, 62, 70, 100, 99, 120, 300]
    rows = [(base + i * step, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 100.0 * i) for i in order]
    params = {"latethrough": latethrough, "fromdate": fromdate, "todate": todate}

    one_by_one = started(rows, **params)
    one_by_one.preload()

    at_once = started(rows, **params)
    assert plain_lines(at_once)
    columns = [np.array([row[i] for row in rows]) for i in range(6)]
    last = append_bars(at_once, LineBars(*columns), latethrough=latethrough)
    at_once._last()
    at_once.home()

    assert state(at_once) == state(one_by_one)
    assert len(at_once) == len(one_by_one) == 0 and at_once.buflen() == one_by_one.buflen()
    assert last == one_by_one._last_num
    assert at_once.buflen() > 0


def test_nothing_to_append_leaves_the_lines_empty() -> None:
    data = started([])
    empty = np.zeros(0)
    assert append_bars(data, LineBars(*(empty,) * 6)) is None
    assert state(data) == state(started([]))
