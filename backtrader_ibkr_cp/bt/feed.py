"""``IBKRCPData``: a backtrader data feed from an IBKR Client Portal Gateway.

The feed is a thin backtrader adapter over a :class:`~backtrader_ibkr_cp.live.runner.StreamRunner`,
which does all the work on its own thread; ``_load`` only drains the runner's queue.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from typing import Any

import backtrader as bt
from backtrader.feed import DataBase
from backtrader.utils import date2num, num2date

from ..errors import ConfigError, MarketError
from ..history.stored import stored_contract
from ..live.events import BarEvent, EndEvent, FeedStatus, StatusEvent, StreamConfig, StreamEvent
from ..live.runner import StreamRunner
from ..models import Contract, Timeframe
from ..models.calendar import EXCHANGE_TZ, next_session_end
from .preload import LineBars, append_bars, from_columns, from_events, plain_lines
from .resample import ExchangeClone, ExchangeReplayer, ExchangeResampler
from .stamps import STAMPS, lines_stamp
from .store import IBKRCPStore
from .storedrun import CLOSING, OPENING, StoredRun
from .tz import localizing_tz

__all__ = ["IBKRCPData"]

_UTC = dt.timezone.utc
#: ``what=`` values IBKR's history knows; only TRADES is implemented.
_WHAT_SUPPORTED = ("TRADES",)
#: The regular session's close (and the extended one's) in exchange time.
_CLOSE = {True: dt.time(16, 0), False: dt.time(20, 0)}


def _data_param_names() -> str:
    params: Any = IBKRCPData.params  # backtrader turns the tuple into a params class
    return ", ".join(params._getkeys())


class _Rejected(Exception):
    """A start failure: raised out of a historical run, a notification in a live one."""

    def __init__(self, status: int, error: MarketError) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error


class MetaIBKRCPData(DataBase.__class__):  # type: ignore[misc]
    def __init__(cls, name: str, bases: tuple[type, ...], dct: dict[str, Any]) -> None:
        super().__init__(name, bases, dct)
        IBKRCPStore.DataCls = cls


class IBKRCPData(DataBase, metaclass=MetaIBKRCPData):  # type: ignore[misc]
    """IBKR Client Portal Gateway data feed: validated history, then live bars.

    ``dataname`` is a symbol (``"AAPL"``), a spec (``"AAPL-STK-SMART-USD"``: symbol, security
    type, exchange, currency) or a conid (``265598``). Store parameters (``gateway_url``,
    ``reconnect``, ...) may be passed here too; they select the :class:`IBKRCPStore`.

    Every bar is stamped when it is complete (its end), stored as UTC and shown in ``tz``, so
    no mix of feeds and timeframes sees the future, and backtrader's resampler and replayer
    get the right-edge stamps they expect. Daily, weekly and monthly bars are stamped at the
    close of their period's last session (16:00 New York; 20:00 with ``useRTH=False``): the
    date shown is the trading date. ``sessionend`` defaults to that close when ``tz`` is the
    exchange's, so ``resampledata`` to days dates each day right.

    A historical run (``historical=True``) that cannot get its data raises the typed error
    out of ``cerebro.run()`` (unknown or ambiguous symbol, unsupported timeframe, a request
    missing from a cassette, a gateway that is down or not logged in, no history for a span
    that had sessions). A live run reports the same through notifications (DISCONNECTED,
    NOTSUPPORTED_TIMEFRAME, NOTSUBSCRIBED for missing market-data permission) and
    ``notify_store``, as backtrader's live feeds do.

    With the store's ``bar_store``, history is read through the Parquet bar store: only what it
    lacks is fetched (and kept), and a historical run the store covers needs no gateway at all,
    not even to look the symbol up. A historical feed with nothing to run per bar (no filter,
    resampling or replaying, no ``backfill_from``) is preloaded in one pass into its lines, with
    the same bars as bar by bar. Pickled for ``optstrategy`` worker processes, a historical feed
    with a bar store first makes the store cover its span (once), so no worker asks the gateway.

    Live mode polls one snapshot request per cycle for every feed of the store, builds bars on
    the gateway's clock, and (``confirm=True``) delivers each as the gateway's own historical
    bar, so live and backtest bars agree exactly. Only completed bars are delivered. Every
    supported (timeframe, compression) pair: Minutes 1, 2, 3, 5, 10, 15, 30, 60, 120, 180,
    240, 480; Days 1; Weeks 1; Months 1.

    Params:
        historical (False): only fetch ``fromdate``..``todate`` (``todate`` None: up to now),
            then DISCONNECTED and finish; no live data.
        backfill_start (True): backfill from ``fromdate`` (None: the 300 bars before now)
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
        stamp ("end"): intraday bars are stamped at their end; ``"start"`` stamps them at
            their start, as IBKR labels them (ignored, with a message, for a feed that is
            resampled or replayed, which needs end stamps).
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
        ("stamp", "end"),
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
        if self.p.stamp not in STAMPS:
            raise ConfigError(f"stamp={self.p.stamp!r}: use one of {', '.join(STAMPS)}")
        self._tz_param = localizing_tz(self.p.tz)
        exchange_tz = self._tz_param is None or getattr(self._tz_param, "key", None) == (
            EXCHANGE_TZ.key
        )
        if self.p.sessionend is None and exchange_tz:
            self.p.sessionend = _CLOSE[bool(self.p.useRTH)]
        self._ticks_mode = bool(self.p.ticks) or self.p.timeframe == bt.TimeFrame.Ticks
        if self._ticks_mode:
            self._timeframe = bt.TimeFrame.Ticks
            self._compression = 1
        self._cache: tuple[Any, list[BarEvent]] | None = None
        self._lines_cache: tuple[Any, LineBars] | None = None
        self._filled_for: Any = None
        self._reset_run_state()

    def _reset_run_state(self) -> None:
        self._state = self._ST_OVER
        self._runner: StreamRunner | None = None
        self._contract: Contract | None = None
        self._bar_tf: Timeframe | None = None
        self._last_num: float | None = None
        self._known_through: dt.datetime | None = None
        self._holding = False
        self._stored: StoredRun | None = None
        self._replay: deque[StreamEvent] | None = None
        self._recorded: list[BarEvent] | None = None
        self._at_end = self.p.stamp == "end"

    # -- pickling (optstrategy workers) ----------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        self._fill_ahead()
        state = self.__dict__.copy()
        state["_runner"] = None
        state["_lines_cache"] = None  # keyed by this process's Cerebro
        state["_holding"] = False
        return state

    # -- backtrader plumbing --------------------------------------------------------------

    def setenvironment(self, env: Any) -> None:
        """Register the store with Cerebro so ``notify_store`` gets its messages."""
        super().setenvironment(env)
        env.addstore(self._store)

    def islive(self) -> bool:
        return not self.p.historical

    def haslivedata(self) -> bool:
        runner = self._runner
        return runner is not None and not runner.events.empty()

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
        runner = self._runner
        if self._ticks_mode and runner is not None and runner.events.empty():
            gateway = runner.gateway_now
            if gateway is not None:
                gateway = gateway.astimezone(_UTC).replace(tzinfo=None)
                known = gateway if known is None else max(known, gateway)
        if known is None:
            return dt.timedelta(0)
        return known - dt.datetime.now(_UTC).replace(tzinfo=None)

    def resample(self, **kwargs: Any) -> None:
        """``cerebro.resampledata``: backtrader's resampler on the exchange's clock."""
        self.addfilter(ExchangeResampler, **kwargs)

    def replay(self, **kwargs: Any) -> None:
        """``cerebro.replaydata``: backtrader's replayer on the exchange's clock."""
        self.addfilter(ExchangeReplayer, **kwargs)

    def clone(self, **kwargs: Any) -> Any:
        """A clone (backtrader makes one to resample a feed it already has)."""
        return ExchangeClone(dataname=self, **kwargs)

    def _check(self, forcedata: Any = None) -> None:
        """backtrader's resampler closes a bar when *another* feed has moved past its end
        (``forcedata``), even while this feed's last bar of that interval is still on its way:
        that bar then landed in the next bucket. Only a time this feed has delivered through
        may close its bars; otherwise its own clock (:meth:`_timeoffset`) decides."""
        if forcedata is not None and not self.p.historical:
            known = self._known_through
            if known is None or date2num(known) < forcedata.datetime[0]:
                forcedata = None
        super()._check(forcedata=forcedata)

    def _getnexteos(self) -> tuple[dt.datetime, float]:
        """The next session close (naive UTC, and as a number) on the exchange calendar, at
        or after the current bar: what backtrader's resampler closes daily bars at."""
        if self._clone:  # pragma: no cover - clones delegate to their source
            return self.data._getnexteos()  # type: ignore[no-any-return]
        if not len(self):
            return dt.datetime.min, 0.0
        stamp = num2date(self.lines.datetime[0]).replace(tzinfo=_UTC)
        close = next_session_end(stamp, outside_rth=not self.p.useRTH)
        naive = close.astimezone(_UTC).replace(tzinfo=None)
        return naive, date2num(naive)

    # -- start / stop ---------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self._laststatus = None  # backtrader presets CONNECTED, which would swallow ours
        self._reset_run_state()
        try:
            self._begin()
        except _Rejected as rejected:
            if self.p.historical:
                self._abandon()
                raise rejected.error from None
            self._store.put_notification(f"{self._label()}: {rejected.error}")
            self.put_notification(rejected.status)
            self._state = self._ST_OVER

    def _begin(self) -> None:
        if not self._ticks_mode:
            try:
                self._bar_tf = Timeframe.from_backtrader(self.p.timeframe, self.p.compression)
            except ConfigError as exc:
                raise _Rejected(self.NOTSUPPORTED_TF, exc) from None
        if self.p.historical and self._ticks_mode:
            raise _Rejected(
                self.DISCONNECTED, ConfigError("ticks mode is live only; set historical=False")
            )
        fromdate, todate = self.p.fromdate, self.p.todate
        if fromdate is not None and todate is not None and fromdate > todate:
            raise _Rejected(
                self.DISCONNECTED,
                ConfigError(
                    f"fromdate {fromdate} is after todate {todate}; pass fromdate <= todate"
                ),
            )
        self._at_end = self.p.stamp == "end" or self._resampled()
        if self.p.stamp == "start" and self._at_end and not self._ticks_mode:
            self._store.put_notification(
                f"{self._label()}: stamp='start' ignored: this feed is resampled or replayed, "
                "which needs bars stamped at their end"
            )
        self._store.start(data=self)
        self._store.hold(self)
        self._holding = True
        try:
            self._stored = self._stored_run()
            if self._stored is None:
                client = self._store.connect(historical=bool(self.p.historical))
        except MarketError as exc:
            raise _Rejected(self.DISCONNECTED, exc) from None
        self.put_notification(self.CONNECTED)
        if self._stored is None:
            try:
                self._contract = client.resolve(self.p.dataname)
            except MarketError as exc:
                raise _Rejected(self.DISCONNECTED, exc) from None
        self._start_finish()
        self._store.data_ready(self)
        if self.p.backfill_from is not None:
            self._state = self._ST_FROM
            self.p.backfill_from.setenvironment(self._env)
            self.p.backfill_from._start()
        else:
            self._state = self._ST_START

    def _stored_run(self) -> StoredRun | None:
        """The run from the bar store alone, when the store covers this historical feed's span
        (the stored contract gives the time zone the span is read in)."""
        bar_store, tf = self._store.bar_store, self._bar_tf
        if bar_store is None or tf is None or not self.p.historical:
            return None
        if self.p.backfill_from is not None or self.p.fromdate is None:
            return None
        contract = stored_contract(bar_store, self.p.dataname)
        if contract is None:
            return None
        self._contract = contract
        self._start_finish()
        config = self._stream_config()
        assert config.start is not None
        return StoredRun.find(
            bar_store, contract, tf, config.start, config.end, outside_rth=config.outside_rth
        )

    def _fill_ahead(self) -> None:
        """Before ``optstrategy`` worker processes get this feed (pickled, in the main
        process): make the bar store cover its span, once per run, so no worker asks the
        gateway. Nothing to do when Cerebro preloads in the main process itself."""
        env = getattr(self, "_env", None)
        if env is None or not self.p.historical or self._store.bar_store is None:
            return
        if not getattr(env, "_dooptimize", False) or env.p.maxcpus == 1:
            return
        if env.p.optdatas and env._dopreload and env._dorunonce:
            return
        key = (id(env), id(getattr(env, "runstrats", None)))
        if self._filled_for == key:
            return
        self._filled_for = key
        notifications = list(self.notifs)
        try:
            self._start()
            if self._state == self._ST_START and self._stored is None:
                self._load_all()  # read through the store: fetches and writes what it lacks
        finally:
            self.stop()
            self.notifs.clear()
            self.notifs.extend(notifications)
            self._cache = self._lines_cache = None
            self._reset_run_state()

    def _resampled(self) -> bool:
        """True when this feed, or a clone of it, feeds backtrader's resampler/replayer."""
        if self.resampling or self.replaying:
            return True
        datas = getattr(self._env, "datas", ())
        return any(
            getattr(d, "data", None) is self and (d.resampling or d.replaying) for d in datas
        )

    def stop(self) -> None:
        """Stop the runner and let go of the store (the last holder closes it)."""
        super().stop()
        self._detach()

    def _detach(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop(timeout=0)
            self._store.remove_runner(runner)
            runner.stop()
        if self._holding:
            self._holding = False
            self._store.release(self)

    def _abandon(self) -> None:
        """A historical run raises: stop everything of this run (Cerebro will not call
        ``stop()`` once an exception leaves ``cerebro.run()``)."""
        self._state = self._ST_OVER
        self._detach()
        self._store.end_run()

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
            end=self._span_end(end),
            after=self._after(after),
            backfill_start=bool(self.p.backfill_start),
            backfill=bool(self.p.backfill),
            confirm=bool(self.p.confirm),
            reconnect=store.reconnect,
            reconnect_timeout=store.reconnect_timeout,
            stall_timeout=store.stall_timeout,
        )

    def _span_end(self, todate: dt.datetime | None) -> dt.datetime | None:
        """The first bar start not wanted: backtrader keeps bars *stamped* at or before
        ``todate``, and an intraday bar is stamped at its end."""
        if todate is None:
            return None
        tf = self._bar_tf
        if tf is not None and tf.is_intraday and self._at_end:
            return todate - tf.duration + dt.timedelta(microseconds=1)
        return todate + dt.timedelta(microseconds=1)

    def _after(self, stamp: dt.datetime | None) -> dt.datetime | None:
        """``backfill_from``'s last stamp as a bar start (the runner de-duplicates by start)."""
        if stamp is None:
            return None
        moment = stamp.replace(tzinfo=_UTC)
        tf = self._bar_tf
        if tf is not None and tf.is_intraday and self._at_end:
            return moment - tf.duration
        return moment

    def _utc(self, moment: dt.datetime | None) -> dt.datetime | None:
        """``fromdate``/``todate`` (naive: in the feed's tz, as backtrader reads them) in UTC."""
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = self._tz.localize(moment) if self._tz is not None else moment
        if moment.tzinfo is None:
            return moment.replace(tzinfo=_UTC)
        return moment.astimezone(_UTC)

    def _cache_key(self) -> Any:
        p = self.p
        return (
            id(self._env),
            self._contract.conid if self._contract is not None else None,
            self._bar_tf,
            p.fromdate,
            p.todate,
            p.useRTH,
            self._at_end,
        )

    def _start_runner(self) -> None:
        assert self._contract is not None
        if self.p.historical and self._cache is not None and self._cache[0] == self._cache_key():
            self._replay = deque(self._cache[1])  # the same span in the same Cerebro: no I/O
            return
        if self._stored is not None:
            self._replay = deque(self._stored.events(self._label()))  # no gateway
            return
        client = self._store.connect(historical=bool(self.p.historical))
        market = None if self.p.historical else self._store.market_source()
        self._runner = StreamRunner(
            self._contract,
            self._stream_config(),
            bars=self._store.bar_source(client),
            session=client,
            market=market,
            notify=self._store.run_notifier(),
            cancel=self._store.cancel_token,
            clock=self._store.clock,
        )
        self._recorded = [] if self.p.historical else None
        self._store.add_runner(self._runner)
        self._runner.start()

    # -- loading --------------------------------------------------------------------------

    def preload(self) -> None:
        """Cerebro's preload: in one pass (:mod:`.preload`) when this historical feed has
        nothing to run per bar; bar by bar, as backtrader does, otherwise."""
        if not self._preloads_at_once():
            super().preload()
            return
        last = append_bars(self, self._load_all(), latethrough=bool(self.p.latethrough))
        if last is not None:
            self._last_num = last
            self._known_through = num2date(last)
        self._last()
        self.home()

    def _preloads_at_once(self) -> bool:
        return (
            bool(self.p.historical)
            and not self._ticks_mode
            and self.p.backfill_from is None
            and self._state == self._ST_START
            and not self._resampled()
            and plain_lines(self)
        )

    def _load_all(self) -> LineBars:
        """Every bar of the run at once: from the bar store, or from the stream (a cassette
        replay, a read-through fetch). Raises like ``_load`` does."""
        assert self._bar_tf is not None
        key = self._cache_key()
        if self._lines_cache is not None and self._lines_cache[0] == key:
            self._state = self._ST_OVER
            return self._lines_cache[1]  # the same span again in this Cerebro: no I/O
        try:
            if self._stored is not None:
                self._on_status(OPENING)
                columns = self._stored.columns(self._label())
                self._on_status(CLOSING)
                self._state = self._ST_OVER
                return from_columns(columns, at_end=self._at_end)
            self._start_runner()
        except MarketError:
            self._abandon()
            raise
        self._state = self._ST_HISTORBACK
        delivered: list[BarEvent] = []
        while True:
            for event in self._next_events():
                if isinstance(event, StatusEvent):
                    self._on_status(event)
                elif isinstance(event, EndEvent):
                    self._recorded = None  # the lines are kept instead of the items
                    self._on_end(event)
                    bars = from_events(delivered, self._bar_tf, at_end=self._at_end)
                    self._lines_cache = (key, bars)
                    return bars
                else:
                    delivered.append(event)

    def _next_events(self) -> list[StreamEvent]:
        """Every item available now, at least one (a historical run: waits for the runner,
        which always ends with an EndEvent). Taking them in batches spares the Cerebro thread
        a wake-up per bar."""
        if self._replay is not None:
            replay, self._replay = self._replay, deque()
            return list(replay) or [EndEvent(None)]
        runner = self._runner
        assert runner is not None
        while True:
            batch = runner.events.drain()
            if batch:
                return batch
            if runner.finished.is_set():
                return runner.events.drain() or [EndEvent(None)]
            self._store.clock.wait(math.inf, runner.events.readable, runner.finished)

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
                    self._start_runner()
                except MarketError as exc:
                    if self.p.historical:
                        self._abandon()
                        raise
                    self._store.put_notification(f"{self._label()}: cannot start: {exc}")
                    self.put_notification(self.DISCONNECTED)
                    self._state = self._ST_OVER
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
                return self._on_end(event)
            if self._write(event):
                return True

    def _next_event(self) -> StreamEvent | None:
        """The next item; waits at most ``self._qcheck`` seconds when live, until the runner
        has something when historical (Cerebro preloads)."""
        if self._replay is not None:
            if self._replay:
                return self._replay.popleft()
            return EndEvent(None)
        runner = self._runner
        assert runner is not None
        if not self.p.historical:
            return runner.events.get(self._qcheck)
        while True:  # Cerebro preloads: wait for the runner (it always ends with an EndEvent)
            event = runner.events.get()
            if event is not None:
                return event
            if runner.finished.is_set():
                return runner.events.get() or EndEvent(None)
            self._store.clock.wait(math.inf, runner.events.readable, runner.finished)

    def _on_status(self, event: StatusEvent) -> None:
        status = getattr(self, event.status.value)
        if event.status == FeedStatus.LIVE:
            self._state = self._ST_LIVE
        elif event.status in (FeedStatus.DELAYED, FeedStatus.CONNBROKEN):
            self._state = self._ST_HISTORBACK
        self.put_notification(status)

    def _on_end(self, event: EndEvent) -> bool:
        self._state = self._ST_OVER
        if event.error is not None and self.p.historical:
            self._abandon()
            raise event.error
        if self._recorded is not None and event.error is None:
            self._cache = (self._cache_key(), self._recorded)
        self._recorded = None
        return False

    def _write(self, event: BarEvent) -> bool:
        """Put ``event`` into the lines; False when it is dropped as late."""
        stamp = lines_stamp(event, self._bar_tf, at_end=self._at_end)
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
        if self._recorded is not None:
            self._recorded.append(event)
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
