"""``IBKRCPData``: a backtrader live data feed from an IBKR Client Portal Gateway.

The feed is a thin backtrader adapter over :class:`~backtrader_ibkr_cp.live.stream.LiveStream`,
which does all the work on its own thread; ``_load`` only drains the stream's queue.
"""

from __future__ import annotations

import datetime as dt
import queue
from typing import Any

import backtrader as bt
from backtrader.feed import DataBase
from backtrader.utils import date2num, num2date

from .btfeed.stamps import lines_stamp
from .btfeed.tz import localizing_tz
from .errors import ConfigError, DataUnavailable, MarketError
from .live.events import BarEvent, EndEvent, FeedStatus, StatusEvent, StreamConfig, StreamEvent
from .live.stream import LiveStream
from .models import Contract, Timeframe
from .models.calendar import EXCHANGE_TZ
from .store import IBKRCPStore

__all__ = ["IBKRCPData"]

_UTC = dt.timezone.utc
#: ``what=`` values IBKR's history knows; only TRADES is implemented.
_WHAT_SUPPORTED = ("TRADES",)


def _data_param_names() -> str:
    params: Any = IBKRCPData.params  # backtrader turns the tuple into a params class
    return ", ".join(params._getkeys())


class MetaIBKRCPData(DataBase.__class__):  # type: ignore[misc]
    def __init__(cls, name: str, bases: tuple[type, ...], dct: dict[str, Any]) -> None:
        super().__init__(name, bases, dct)
        IBKRCPStore.DataCls = cls


class IBKRCPData(DataBase, metaclass=MetaIBKRCPData):  # type: ignore[misc]
    """IBKR Client Portal Gateway data feed: validated history, then live bars.

    ``dataname`` is a symbol (``"AAPL"``), a spec (``"AAPL-STK-SMART-USD"``: symbol, security
    type, exchange, currency) or a conid (``265598``). Store parameters (``gateway_url``,
    ``reconnect``, ...) may be passed here too; they select the :class:`IBKRCPStore`.

    Intraday bars are stamped at their start (as IBKR, ``GatewayClient.fetch_bars`` and the
    simulator's ground truth do), stored as UTC and shown in ``tz``. Daily, weekly and monthly
    bars are stamped at the close of their period's last session (16:00 New York; 20:00 with
    ``useRTH=False``): the date shown is the trading date, and the bar sorts after every
    intraday bar of its period. Under ``resampledata``/``replaydata`` intraday bars enter
    backtrader's resampler stamped at their end (the right edge it expects), so resampled
    bars are exact aggregations, stamped at their right edge as usual in backtrader.

    Live mode polls one snapshot request per cycle for every feed of the store, builds bars on
    the gateway's clock, and (``confirm=True``) delivers each as the gateway's own historical
    bar, so live and backtest bars agree exactly. Only completed bars are delivered. Every
    supported (timeframe, compression) pair: Minutes 1, 2, 3, 5, 10, 15, 30, 60, 120, 180,
    240, 480; Days 1; Weeks 1; Months 1; anything else gives NOTSUPPORTED_TIMEFRAME.

    Params:
        historical (False): only fetch ``fromdate``..``todate`` (``todate`` None: up to now),
            then DISCONNECTED and finish; no live data.
        backfill_start (True): backfill from ``fromdate`` (None: about 300 bars back)
            before going live.
        backfill (True): after a lost connection, backfill the gap from the last delivered
            bar, so no bar is lost or repeated.
        backfill_from (None): another data feed whose bars are delivered first; the
            backfill then starts after its last bar.
        qcheck (0.5): seconds ``_load`` waits for live data before returning to Cerebro.
        what ("TRADES"): the price type; only TRADES is supported.
        useRTH (True): regular trading hours only (09:30-16:00 New York); False adds pre- and
            post-market (04:00-20:00).
        tz (None): output time zone: an IANA name, ``zoneinfo.ZoneInfo``, a pytz zone or
            any tzinfo; None uses the contract's exchange time zone. ``fromdate``/``todate``
            are read in this zone.
        ticks (False): deliver every traded snapshot as a one-tick bar (TimeFrame.Ticks) for
            ``resampledata``/``replaydata``; the backfill uses one-minute bars stamped at
            their end.
        confirm (True): replace each live-built bar by the gateway's historical bar for its
            interval (False: deliver the bar built from snapshots).
        latethrough (False): let a bar stamped at or before the previous one through
            (normally dropped).
    """

    params = (
        ("historical", False),
        ("backfill_start", True),
        ("backfill", True),
        ("backfill_from", None),
        ("qcheck", 0.5),
        ("what", "TRADES"),
        ("useRTH", True),
        ("tz", None),
        ("ticks", False),
        ("confirm", True),
        ("latethrough", False),
    )

    _ST_FROM, _ST_START, _ST_LIVE, _ST_HISTORBACK, _ST_OVER = range(5)

    def __init__(self, **kwargs: Any) -> None:
        store = kwargs.pop("_store", None)
        if store is None:
            try:
                store = IBKRCPStore(**kwargs)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (data parameters: {_data_param_names()})") from exc
        elif kwargs:
            raise ConfigError(
                f"unknown IBKRCPData parameter(s) {', '.join(sorted(kwargs))}; store "
                "parameters go to IBKRCPStore(...), data parameters are: "
                f"{_data_param_names()}"
            )
        self._store = store
        what = str(self.p.what or "TRADES").upper()
        if what not in _WHAT_SUPPORTED:
            raise ConfigError(
                f"what={self.p.what!r} is not supported yet; use what='TRADES' (IBKR's BID, "
                "ASK and MIDPOINT bars are not implemented)"
            )
        self._tz_param = localizing_tz(self.p.tz)
        self._ticks_mode = bool(self.p.ticks) or self.p.timeframe == bt.TimeFrame.Ticks
        if self._ticks_mode:
            self._timeframe = bt.TimeFrame.Ticks
            self._compression = 1
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._state = self._ST_OVER
        self._stream: LiveStream | None = None
        self._contract: Contract | None = None
        self._bar_tf: Timeframe | None = None
        self._last_num: float | None = None
        self._known_through: dt.datetime | None = None

    # -- backtrader plumbing --------------------------------------------------------------

    def setenvironment(self, env: Any) -> None:
        """Register the store with Cerebro so ``notify_store`` gets its messages."""
        super().setenvironment(env)
        env.addstore(self._store)

    def islive(self) -> bool:
        return not self.p.historical

    def haslivedata(self) -> bool:
        stream = self._stream
        return stream is not None and not stream.events.empty()

    def _gettz(self) -> Any:
        if self._tz_param is not None:
            return self._tz_param
        zone = self._contract.time_zone if self._contract is not None else EXCHANGE_TZ.key
        return localizing_tz(zone)

    def _timeoffset(self) -> dt.timedelta:
        """Offset making backtrader's resampler clock read the time this feed is known
        through (its last delivered stamp; in ticks mode the gateway time once the queue
        is drained), so ``check()`` never closes a bar whose source bars are in flight and
        the gateway's (possibly simulated, faster) clock is used instead of the local one."""
        known = self._known_through
        stream = self._stream
        if self._ticks_mode and stream is not None and stream.events.empty():
            gateway = stream.gateway_now
            if gateway is not None:
                gateway = gateway.astimezone(_UTC).replace(tzinfo=None)
                known = gateway if known is None else max(known, gateway)
        if known is None:
            return dt.timedelta(0)
        return known - dt.datetime.now(_UTC).replace(tzinfo=None)

    # -- start / stop ---------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self._laststatus = None  # backtrader presets CONNECTED, which would swallow ours
        self._reset_run_state()
        if not self._ticks_mode:
            try:
                self._bar_tf = Timeframe.from_backtrader(self.p.timeframe, self.p.compression)
            except ConfigError as exc:
                self._store.put_notification(f"{self._label()}: {exc}")
                self.put_notification(self.NOTSUPPORTED_TF)
                return
        if self.p.historical and self._ticks_mode:
            self._reject(self.DISCONNECTED, "ticks mode is live only; set historical=False")
            return
        fromdate, todate = self.p.fromdate, self.p.todate
        if fromdate is not None and todate is not None and fromdate > todate:
            self._reject(
                self.DISCONNECTED,
                f"fromdate {fromdate} is after todate {todate}; pass fromdate <= todate",
            )
            return
        self._store.start(data=self)
        try:
            client = self._store.connect()
        except MarketError as exc:
            self._reject(self.DISCONNECTED, f"cannot use the gateway: {exc}")
            return
        self.put_notification(self.CONNECTED)
        try:
            self._contract = client.resolve(self.p.dataname)
        except (DataUnavailable, ConfigError) as exc:
            self._reject(self.NOTSUBSCRIBED, str(exc))
            return
        except MarketError as exc:
            self._reject(self.DISCONNECTED, f"cannot resolve {self.p.dataname!r}: {exc}")
            return
        self._start_finish()
        if self.p.backfill_from is not None:
            self._state = self._ST_FROM
            self.p.backfill_from.setenvironment(self._env)
            self.p.backfill_from._start()
        else:
            self._state = self._ST_START

    def stop(self) -> None:
        """Signal the stream to stop; the store joins it (Cerebro stops stores last)."""
        super().stop()
        if self._stream is not None:
            self._stream.stop(timeout=0)

    def _reject(self, status: int, message: str) -> None:
        self._store.put_notification(f"{self._label()}: {message}")
        self.put_notification(status)
        self._state = self._ST_OVER

    def _label(self) -> str:
        return f"IBKRCPData({self.p.dataname!r})"

    def _stream_config(self) -> StreamConfig:
        store = self._store.p
        start = self._utc(self.p.fromdate)
        end = self._utc(self.p.todate)
        after = num2date(self._last_num) if self._last_num is not None else None
        return StreamConfig(
            timeframe=self._bar_tf,
            outside_rth=not self.p.useRTH,
            historical=bool(self.p.historical),
            start=start,
            # backtrader keeps bars stamped at todate: make the fetch end inclusive.
            end=end + dt.timedelta(microseconds=1) if end is not None else None,
            after=after.replace(tzinfo=_UTC) if after is not None else None,
            backfill_start=bool(self.p.backfill_start),
            backfill=bool(self.p.backfill),
            confirm=bool(self.p.confirm),
            reconnect=store.reconnect,
            reconnect_timeout=store.reconnect_timeout,
            stall_timeout=store.stall_timeout,
        )

    def _utc(self, moment: dt.datetime | None) -> dt.datetime | None:
        """``fromdate``/``todate`` (naive: in the feed's tz, as backtrader reads them) in UTC."""
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = self._tz.localize(moment) if self._tz is not None else moment
        if moment.tzinfo is None:
            return moment.replace(tzinfo=_UTC)
        return moment.astimezone(_UTC)

    def _start_stream(self) -> None:
        assert self._contract is not None
        client = self._store.connect()
        poller = None if self.p.historical else self._store.poller()
        self._stream = LiveStream(
            client,
            poller,
            self._contract,
            self._stream_config(),
            notify=self._store.put_notification,
        )
        self._store.add_stream(self._stream)
        self._stream.start()

    # -- loading --------------------------------------------------------------------------

    def _load(self) -> bool | None:
        if self._state == self._ST_OVER:
            return False
        while True:
            if self._state == self._ST_FROM:
                if self._load_from():
                    return True
                self._state = self._ST_START
                continue
            if self._state == self._ST_START:
                try:
                    self._start_stream()
                except MarketError as exc:
                    self._reject(self.DISCONNECTED, f"cannot start: {exc}")
                    return False
                self._state = self._ST_HISTORBACK
                continue
            event = self._next_event()
            if event is None:
                return None
            if isinstance(event, StatusEvent):
                self._on_status(event)
                if not self.p.historical:
                    return None  # let Cerebro deliver the notification before the next bar
                continue
            if isinstance(event, EndEvent):
                self._state = self._ST_OVER
                return False
            if self._write(event):
                return True

    def _next_event(self) -> StreamEvent | None:
        """The next stream event; waits at most ``self._qcheck`` seconds when live. When
        historical (Cerebro preloads) it waits until the stream has something."""
        stream = self._stream
        assert stream is not None
        if not self.p.historical:
            try:
                if self._qcheck > 0:
                    return stream.events.get(timeout=self._qcheck)
                return stream.events.get_nowait()
            except queue.Empty:
                return None
        while True:
            try:
                return stream.events.get(timeout=1.0)
            except queue.Empty:
                if not stream.running and stream.events.empty():
                    return EndEvent(None)

    def _on_status(self, event: StatusEvent) -> None:
        status = getattr(self, event.status.value)
        if event.status == FeedStatus.LIVE:
            self._state = self._ST_LIVE
        elif event.status in (FeedStatus.DELAYED, FeedStatus.CONNBROKEN):
            self._state = self._ST_HISTORBACK
        self.put_notification(status)

    def _write(self, event: BarEvent) -> bool:
        """Put ``event`` into the lines; False when it is dropped as late."""
        # Under resampledata/replaydata, backtrader expects bars stamped at their right edge.
        right_edge = bool(self.resampling or self.replaying)
        stamp = lines_stamp(event, self._bar_tf, right_edge=right_edge)
        num = date2num(stamp)
        if self._last_num is not None and num <= self._last_num and not self.p.latethrough:
            return False
        bar = event.bar
        lines = self.lines
        lines.datetime[0] = num
        lines.open[0] = bar.open
        lines.high[0] = bar.high
        lines.low[0] = bar.low
        lines.close[0] = bar.close
        lines.volume[0] = bar.volume
        lines.openinterest[0] = 0.0
        self._last_num = num
        self._known_through = stamp
        return True

    def _load_from(self) -> bool:
        source = self.p.backfill_from
        if not source.next():
            return False
        for alias in self.lines.getlinealiases():
            getattr(self.lines, alias)[0] = getattr(source.lines, alias)[0]
        self._last_num = self.lines.datetime[0]
        self._known_through = num2date(self._last_num)
        return True
