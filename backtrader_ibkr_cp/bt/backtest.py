"""Run a backtrader backtest through ``IBKRCPStore``: what ``ibkr-cp record`` and ``ibkr-cp demo``
run (the demo strategy, recording a store run into a cassette)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..cassettes.recording import RecordResult, record_run, run_metadata
from ..errors import DataUnavailable
from ..models import Timeframe

__all__ = [
    "BacktestResult",
    "record_store_run",
    "run_backtest",
]


@dataclass
class BacktestResult:
    """What a run produced. ``bars`` per symbol: ``(datetime UTC, open, high, low, close,
    volume)``; ``equity``: ``(datetime UTC, portfolio value)`` after every bar; ``live_bars``
    the bars delivered while the feeds were LIVE; ``seconds`` wall time of ``cerebro.run``."""

    bars: dict[str, list[tuple[datetime, float, float, float, float, float]]] = field(
        default_factory=dict
    )
    equity: list[tuple[datetime, float]] = field(default_factory=list)
    start_value: float = 0.0
    end_value: float = 0.0
    trades: int = 0
    won: int = 0
    max_drawdown_pct: float = 0.0
    live_bars: int = 0
    seconds: float = 0.0
    notifications: list[str] = field(default_factory=list)
    #: At the end, as the broker saw them: cash, and the position of every symbol.
    cash: float = 0.0
    positions: dict[str, float] = field(default_factory=dict)
    #: Orders sent, and how many of them filled completely.
    orders: int = 0
    filled: int = 0

    @property
    def return_pct(self) -> float:
        return (self.end_value / self.start_value - 1.0) * 100.0 if self.start_value else 0.0


def _strategy_class() -> Any:
    import backtrader as bt

    class DemoSmaCross(bt.Strategy):  # type: ignore[misc]
        """Per data: buy when the fast SMA crosses above the slow one, sell on the cross
        down (``live_only``: only on LIVE bars). Records every bar and the portfolio value."""

        params = (
            ("fast", 10),
            ("slow", 30),
            ("result", None),
            ("stop_after_live", 0),
            ("live_only", False),
            ("follow_trend", False),
        )

        def __init__(self) -> None:
            self.cross = {
                d: bt.indicators.CrossOver(
                    bt.indicators.SMA(d, period=self.p.fast),
                    bt.indicators.SMA(d, period=self.p.slow),
                )
                for d in self.datas
            }
            self.seen: dict[Any, float] = {}
            self.live: set[Any] = set()
            self.working: dict[Any, Any] = {}  # per data: its order until it is done
            self.entered: set[Any] = set()

        def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
            if status == data.LIVE:
                self.live.add(data)
            elif data in self.live:
                self.live.discard(data)

        def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
            self.p.result.notifications.append(str(msg))

        def notify_order(self, order: Any) -> None:
            result: BacktestResult = self.p.result
            if order.status == order.Submitted:
                result.orders += 1
            elif order.status == order.Completed:
                result.filled += 1
            data = order.data
            working = self.working.get(data)  # notifications carry clones: compare refs
            if not order.alive() and working is not None and working.ref == order.ref:
                del self.working[data]
                self._maybe_stop()

        def _collect(self) -> list[Any]:
            """Record each data's new bar; returns the datas that got one."""
            result: BacktestResult = self.p.result
            fresh = []
            for data in self.datas:
                if not len(data):
                    continue
                stamp = data.datetime[0]
                if self.seen.get(data) == stamp:
                    continue
                self.seen[data] = stamp
                fresh.append(data)
                when = bt.num2date(stamp).replace(tzinfo=timezone.utc)
                result.bars.setdefault(data._name, []).append(
                    (when, data.open[0], data.high[0], data.low[0], data.close[0],
                     data.volume[0])
                )  # fmt: skip
                if data in self.live:
                    result.live_bars += 1
            return fresh

        def prenext(self) -> None:
            self._collect()  # indicators warming up: record bars, no orders

        def next(self) -> None:
            result: BacktestResult = self.p.result
            ending = self.p.stop_after_live and result.live_bars >= self.p.stop_after_live
            for data in self._collect():
                if ending or (self.p.live_only and data not in self.live):
                    continue  # a backfilled bar, or the run is ending: no orders
                if data in self.working:
                    continue  # an order of this data is still working at the broker
                position = self.getposition(data).size
                if self.p.follow_trend:
                    # Buy on the first bar, then long while the fast SMA is above the slow one.
                    fast, slow = self.cross[data].data0[0], self.cross[data].data1[0]
                    first = data not in self.entered
                    self.entered.add(data)
                    up, down = first or fast > slow, not first and fast < slow
                else:  # act on crosses only
                    up, down = self.cross[data][0] > 0, self.cross[data][0] < 0
                placed: Any = None
                if up and position <= 0:
                    placed = self.buy(data=data)
                elif down and position > 0:
                    placed = self.close(data=data)
                if placed is not None:
                    self.working[data] = placed
            now = max(d.datetime.datetime(0) for d in self.datas if len(d))
            result.equity.append((now.replace(tzinfo=timezone.utc), self.broker.getvalue()))
            self._maybe_stop()

        def _maybe_stop(self) -> None:
            """Stop after ``stop_after_live`` live bars, once no order is working (a live
            broker reports fills a few seconds later: the run waits for them)."""
            result: BacktestResult = self.p.result
            done = self.p.stop_after_live and result.live_bars >= self.p.stop_after_live
            if done and not self.working:
                self.env.runstop()

        def stop(self) -> None:
            result: BacktestResult = self.p.result
            result.cash = float(self.broker.getcash())
            result.positions = {d._name: float(self.getposition(d).size) for d in self.datas}

    return DemoSmaCross


def run_backtest(
    symbols: Sequence[str],
    timeframe: Timeframe | str,
    start: datetime | None,
    end: datetime | None,
    *,
    gateway_url: str = "https://localhost:5000",
    verify: bool | str | None = None,
    outside_rth: bool = False,
    cassette: str | os.PathLike[str] | None = None,
    record_mode: str | None = None,
    store_kwargs: Mapping[str, Any] | None = None,
    historical: bool = True,
    cash: float = 100_000.0,
    stop_after_live: int = 0,
    timeout: float | None = None,
    fast: int = 10,
    slow: int = 30,
    broker_kwargs: Mapping[str, Any] | None = None,
) -> BacktestResult:
    """A Cerebro run of an SMA(``fast``/``slow``) cross on ``symbols`` fed by ``IBKRCPStore``.

    ``start``/``end`` are tz-aware (the feeds get them as UTC with ``tz="UTC"``). With
    ``cassette`` the store replays it (``record_mode`` None/"none", no network) or records
    into it (``IBKRCPStore(cassette=..., record_mode=...)``). ``historical=False``
    runs live until ``stop_after_live`` live bars arrived or ``timeout`` seconds passed.
    With ``broker_kwargs`` the orders go to the gateway's account
    (``store.getbroker(**broker_kwargs)``, Cerebro with ``quicknotify``) and the strategy
    buys each symbol on its first bar, then holds it while its fast SMA is above the slow
    one; without, backtrader's own broker fills them with ``cash``.
    """
    import backtrader as bt

    from .store import IBKRCPStore

    tf = Timeframe.parse(timeframe)
    result = BacktestResult()
    trading = broker_kwargs is not None
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1, quicknotify=trading)
    cerebro.broker.setcash(cash)
    percents = max(1, int(90 / max(1, len(symbols))))
    cerebro.addsizer(bt.sizers.PercentSizerInt if trading else bt.sizers.PercentSizer,
                     percents=percents)  # fmt: skip
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="drawdown")
    cerebro.addstrategy(
        _strategy_class(),
        result=result,
        stop_after_live=stop_after_live,
        live_only=not historical,
        follow_trend=trading,
        fast=fast,
        slow=slow,
    )
    store_cls: Any = IBKRCPStore
    store = store_cls(
        gateway_url=gateway_url,
        verify=verify,
        cassette=None if cassette is None else str(cassette),
        record_mode=record_mode if cassette is not None else None,
        **dict(store_kwargs or {}),
    )
    if broker_kwargs is not None:
        cerebro.broker = store.getbroker(**broker_kwargs)

    def utc_naive(value: datetime | None) -> datetime | None:
        return value.astimezone(timezone.utc).replace(tzinfo=None) if value else None

    for symbol in symbols:
        data = store.getdata(
            dataname=symbol,
            name=symbol,
            timeframe=tf.bt_timeframe,
            compression=tf.bt_compression,
            fromdate=utc_naive(start),
            todate=utc_naive(end),
            historical=historical,
            useRTH=not outside_rth,
            tz="UTC",
        )
        cerebro.adddata(data)
    timer = threading.Timer(timeout, cerebro.runstop) if timeout else None
    began = time.monotonic()
    try:
        if timer is not None:
            timer.daemon = True
            timer.start()
        strategies = cerebro.run(runonce=False)
    finally:
        if timer is not None:
            timer.cancel()
        store.stop()
    result.seconds = time.monotonic() - began
    strategy = strategies[0]
    result.start_value = float(cerebro.broker.startingvalue) if trading else cash
    result.end_value = float(cerebro.broker.getvalue())
    trades = strategy.analyzers.trades.get_analysis()
    result.trades = int(trades.get("total", {}).get("closed", 0) or 0)
    result.won = int(trades.get("won", {}).get("total", 0) or 0)
    result.max_drawdown_pct = float(strategy.analyzers.drawdown.get_analysis().max.drawdown)
    return result


def record_store_run(
    path: str | os.PathLike[str],
    symbols: Sequence[str],
    timeframe: Timeframe | str,
    start: datetime,
    end: datetime,
    *,
    gateway_url: str,
    verify: bool | str | None = None,
    outside_rth: bool = False,
    append: bool = False,
    metadata: Mapping[str, Any] | None = None,
    store_kwargs: Mapping[str, Any] | None = None,
) -> RecordResult:
    """Record the historical :func:`run_backtest` of ``symbols`` into ``path``: exactly the
    requests a replay of the same run (same symbols, bar, dates) makes."""
    tf = Timeframe.parse(timeframe)
    meta = run_metadata(
        symbols, tf, start, end, outside_rth=outside_rth, recorded_with="store", extra=metadata
    )

    def run(cassette_path: Path, mode: str) -> dict[str, int]:
        result = run_backtest(
            symbols,
            tf,
            start,
            end,
            gateway_url=gateway_url,
            verify=verify,
            outside_rth=outside_rth,
            cassette=cassette_path,
            record_mode=mode,
            store_kwargs=store_kwargs,
        )
        counts = {symbol: len(result.bars.get(symbol, [])) for symbol in symbols}
        empty = [symbol for symbol, n in counts.items() if n == 0]
        if empty:
            said = "; ".join(result.notifications) or "no message from the store"
            raise DataUnavailable(
                f"no bars for {', '.join(empty)} from {gateway_url}, so nothing was recorded "
                f"({said}); check the symbols and dates (`ibkr-cp bars SYMBOL ...`)",
                endpoint="/iserver/marketdata/history",
            )
        return counts

    return record_run(path, run, metadata=meta, append=append)
