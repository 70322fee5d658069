"""The per-feed engine: backfill, live bars, confirmation, reconnection. No backtrader here.

Threading model: a :class:`LiveStream` runs ONE background thread of its own. The store's
:class:`~backtrader_ibkr_cp.live.poller.SnapshotPoller` calls :meth:`LiveStream.on_snapshot` /
:meth:`LiveStream.on_error` on the poller thread; those only queue the item. The stream thread
does everything slow (history requests, re-authentication, waits) and puts
:data:`~backtrader_ibkr_cp.live.events.StreamEvent` values into :attr:`LiveStream.events`, a
``queue.Queue`` the backtrader feed drains without blocking. :meth:`LiveStream.stop` ends and
joins the thread.

Continuity: the stream keeps a *cursor*, the end of the last bar interval it settled. Every bar
it emits starts strictly after the last one emitted (``<=`` de-duplication), so nothing repeats
across backfill -> live, retries, 429 back-offs or reconnections; and every interval after the
cursor is settled from the gateway's history once gateway time passes its end, so nothing is
lost when snapshots were missed (the builder only supplies bars it watched from their start).
Time is the gateway's clock (snapshot ``_updated`` and ``GatewayClient.server_time()``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

from ..errors import AuthenticationError, ConfigError, DataUnavailable, MarketError
from ..models import Bar, Contract, Snapshot
from ..models.calendar import default_start
from .builder import BarBuilder, TickBuilder
from .events import EndEvent, FeedStatus, StatusEvent, StreamConfig, StreamEvent
from .fetching import (
    MAX_RETRY_WAIT,
    BarFetcher,
    ConnectionLost,
    StreamClient,
    StreamStopped,
    gave_up,
)
from .poller import SnapshotPoller
from .timeline import Timeline

__all__ = ["LiveStream"]

log = logging.getLogger(__name__)

#: Seconds the stream thread waits for a snapshot before looking at the clock again.
_TICK = 0.1
#: History requests a backfill makes to catch up with bars that completed while it ran; any
#: bar still missing afterwards is settled by the live loop in one request.
_CATCH_UP_PASSES = 3


class LiveStream:
    """Bars of one contract for one feed: backfill, then live (or historical only).

    Args:
        client: the store's GatewayClient (history, server time, re-authentication).
        poller: the store's shared snapshot poller (live mode only).
        contract: the resolved contract.
        config: what to fetch and how to recover.
        notify: receives human messages for the store (``Strategy.notify_store``); called
            from the stream thread.
    """

    def __init__(
        self,
        client: StreamClient,
        poller: SnapshotPoller | None,
        contract: Contract,
        config: StreamConfig,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        if not config.historical and poller is None:
            raise ConfigError("a live stream needs the store's snapshot poller")
        self.client = client
        self.poller = poller
        self.contract = contract
        self.config = config
        self.events: queue.Queue[StreamEvent] = queue.Queue()
        self._notify = notify or (lambda message: None)
        self._inbox: queue.Queue[Snapshot | MarketError] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: FeedStatus | None = None
        self._ended = False
        self._timeline = Timeline(
            config.bar_timeframe,
            outside_rth=config.outside_rth,
            ticks=config.ticks,
            end=config.end,
            after=config.after,
        )
        self._gateway_now: datetime | None = None
        self._last_data = time.monotonic()  # last successful snapshot for this conid
        self._errors = 0
        self._retry_at = 0.0
        self._confirm_tries = 0
        tf = config.bar_timeframe
        self._builder = BarBuilder(tf, outside_rth=config.outside_rth)
        self._ticks = TickBuilder(outside_rth=config.outside_rth)
        self._built: dict[datetime, Bar] = {}
        self._label = f"{contract.symbol or contract.conid} {'ticks' if config.ticks else tf.bar}"
        self._fetcher = BarFetcher(
            client,
            contract.conid,
            tf,
            outside_rth=config.outside_rth,
            stop=self._stop,
            notify=self._notify,
            label=self._label,
        )

    # -- public ---------------------------------------------------------------------------

    @property
    def last_delivered(self) -> datetime | None:
        """Stamp of the last bar or tick emitted (tz-aware UTC), or None."""
        return self._timeline.last

    @property
    def gateway_now(self) -> datetime | None:
        """The latest gateway time the stream has seen (tz-aware UTC), or None."""
        return self._gateway_now

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the stream thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._main, name=f"ibkr-cp-stream-{self._label}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread, leave the poller, and wait for the thread to end (at most
        ``timeout`` seconds; 0 only signals)."""
        self._stop.set()
        if self.poller is not None:
            self.poller.unsubscribe(self.contract.conid, self)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive() and timeout != 0:
                log.warning("stream %s did not stop within %s s", self._label, timeout)

    # -- SnapshotListener (poller thread) ------------------------------------------------

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self._inbox.put(snapshot)

    def on_error(self, error: MarketError) -> None:
        self._inbox.put(error)

    # -- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        error: MarketError | None = None
        try:
            if self.config.historical:
                self._run_historical()
            else:
                self._run_live()
        except StreamStopped:
            pass
        except MarketError as exc:
            if not self._stop.is_set():  # closing the client fails requests in flight
                error = exc
        except Exception as exc:
            log.exception("stream %s failed", self._label)
            error = MarketError(
                f"{self._label}: the live stream failed unexpectedly ({type(exc).__name__}: "
                f"{exc}); the feed stopped; please report this"
            )
        finally:
            if self.poller is not None:
                self.poller.unsubscribe(self.contract.conid, self)
            if error is not None:
                self._fail(error)
            elif not self._ended:
                self._end(None)

    def _fail(self, error: MarketError) -> None:
        self._notify(f"{self._label}: {error}")
        if isinstance(error, DataUnavailable):
            self._set_status(FeedStatus.NOTSUBSCRIBED, str(error))
        else:
            self._set_status(FeedStatus.DISCONNECTED, str(error))
        self._end(error)

    def _end(self, error: MarketError | None) -> None:
        if not self._ended:
            self._ended = True
            self.events.put(EndEvent(error))

    def _set_status(self, status: FeedStatus, message: str = "") -> None:
        if status != self._status:
            self._status = status
            self.events.put(StatusEvent(status, message))

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise StreamStopped()

    # -- historical ----------------------------------------------------------------------

    def _run_historical(self) -> None:
        self._set_status(FeedStatus.DELAYED, "fetching historical bars")
        now = self._now()
        end = self.config.end if self.config.end is not None else now
        start = self._backfill_from(min(end, now))
        if start < end:
            bars = self._fetcher.fetch_retrying(
                start, min(end, now), now, historical=True, settles=True
            )
            self._emit_all(bars, live=False)
        self._set_status(FeedStatus.DISCONNECTED, "historical data delivered")
        self._end(None)

    # -- live ------------------------------------------------------------------------------

    def _run_live(self) -> None:
        assert self.poller is not None
        self.poller.subscribe(self.contract.conid, self)
        self._last_data = time.monotonic()
        try:
            if self.config.backfill_start:
                self._set_status(FeedStatus.DELAYED, "backfilling")
                self._catch_up()
            else:
                self._skip_to_now()
        except ConnectionLost as broken:
            self._recover(broken)
        while True:
            self._check_stop()
            try:
                self._live_cycle()
            except ConnectionLost as broken:
                self._recover(broken)
            if self._timeline.reached_end(self._gateway_now):
                self._set_status(FeedStatus.DISCONNECTED, "todate reached")
                self._end(None)
                return

    def _live_cycle(self) -> None:
        try:
            item = self._inbox.get(timeout=_TICK)
        except queue.Empty:
            item = None
        while item is not None:
            self._check_stop()
            if isinstance(item, Snapshot):
                self._on_snapshot(item)
            else:
                self._on_poll_error(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                item = None
        if not self.config.ticks:
            self._settle()
        stalled = time.monotonic() - self._last_data
        if stalled > self.config.stall_timeout:
            raise ConnectionLost(f"no market data for {stalled:.0f} s")

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        if snapshot.conid != self.contract.conid:
            return
        self._last_data = time.monotonic()
        self._errors = 0
        if snapshot.timestamp is not None:
            self._observe_time(snapshot.timestamp)
        availability = snapshot.availability
        if availability.code and not availability.subscribed:
            raise DataUnavailable(
                f"no market data permission for {self._label} (availability "
                f"{availability.code!r}: {availability.describe()}); subscribe to this "
                "market's data in Client Portal > Settings > Market Data Subscriptions",
                endpoint="/iserver/marketdata/snapshot",
                conid=self.contract.conid,
            )
        if snapshot.is_preflight:  # no market fields yet (a not-subscribed answer has none)
            return
        if availability.delayed:
            self._set_status(FeedStatus.DELAYED, "the gateway sends delayed market data")
        else:
            self._set_status(FeedStatus.LIVE, availability.describe())
        if self.config.ticks:
            tick = self._ticks.update(snapshot)
            event = self._timeline.accept_tick(tick) if tick is not None else None
            if event is not None:
                self.events.put(event)
            return
        for bar in self._builder.update(snapshot):
            self._built[bar.timestamp] = bar

    def _on_poll_error(self, error: MarketError) -> None:
        if isinstance(error, AuthenticationError):
            raise ConnectionLost("the gateway session was lost", error)
        self._errors += 1
        if self._errors == 1:
            self._notify(f"{self._label}: snapshot poll failed, retrying: {error}")

    # -- settling intervals -------------------------------------------------------------

    def _settle(self) -> None:
        """Emit every interval that is complete at gateway time, confirmed or built."""
        now = self._now()
        self._builder_flush(now)
        while True:
            due = self._timeline.due()
            if due is None or now < due.end or time.monotonic() < self._retry_at:
                return
            if self.config.end is not None and due.start >= self.config.end:
                return
            built = self._built.pop(due.start, None)
            if built is not None and not self.config.confirm:
                self._emit(built, live=True)
                continue
            bars = self._fetch_live(due.start, now)
            fresh = [b for b in bars if self._timeline.fresh(b)]
            if fresh:
                self._confirm_tries = 0
                self._emit_all(fresh, live=True)
                self._timeline.settle_empty(due)  # no bar there in history: nothing traded
                continue
            self._confirm_tries += 1
            if self._confirm_tries < self.config.confirm_attempts:
                if built is not None:
                    self._built[due.start] = built
                self._retry_at = time.monotonic() + self.config.confirm_wait
                return
            self._confirm_tries = 0
            if built is not None:
                self._notify(
                    f"{self._label}: the gateway's history has no bar for "
                    f"{due.start.isoformat()} yet; delivering the bar built from snapshots"
                )
                self._emit(built, live=True)
            else:
                self._timeline.settle_empty(due)

    def _builder_flush(self, now: datetime) -> None:
        for bar in self._builder.flush(now):
            self._built[bar.timestamp] = bar
        cursor = self._timeline.cursor
        if cursor is not None:
            for stale in [t for t in self._built if t < cursor]:
                del self._built[stale]

    def _catch_up(self) -> None:
        """Backfill completed bars from the resume point until the bar after the last one
        delivered is not complete yet at gateway time."""
        for _ in range(_CATCH_UP_PASSES):
            self._check_stop()
            now = self._now()
            start = self._resume_point(now)
            if self.config.end is not None and start >= self.config.end:
                return
            delivered = self._timeline.last
            end = now if self.config.end is None else min(now, self.config.end)
            first = self._timeline.cursor is None  # nothing settled yet: a first backfill
            bars = self._fetcher.fetch_retrying(start, end, now, historical=False, settles=first)
            self._emit_all(bars, live=False)
            if self._timeline.cursor is None:
                self._timeline.skip_to(now)
            due = self._timeline.due()
            if self._timeline.last == delivered or due is None or self._now() < due.end:
                return

    def _resume_point(self, now: datetime) -> datetime:
        due = self._timeline.due()
        if due is not None:
            return due.start
        return self._backfill_from(now)

    def _backfill_from(self, now: datetime) -> datetime:
        if self.config.start is not None:
            return self.config.start
        return default_start(self.config.bar_timeframe, now, self.config.lookback_bars)

    def _skip_to_now(self) -> None:
        self._timeline.skip_to(self._now())

    # -- emitting --------------------------------------------------------------------------

    def _emit_all(self, bars: list[Bar], *, live: bool) -> None:
        for bar in bars:
            self._emit(bar, live=live)

    def _emit(self, bar: Bar, *, live: bool) -> None:
        event = self._timeline.accept(bar, live=live)
        if event is not None:
            self.events.put(event)

    # -- time ----------------------------------------------------------------------------

    def _observe_time(self, moment: datetime) -> None:
        if self._gateway_now is None or moment > self._gateway_now:
            self._gateway_now = moment

    def _now(self) -> datetime:
        """Gateway time: the later of the last snapshot time and the client's server time."""
        try:
            self._observe_time(self.client.server_time())
        except MarketError as exc:
            log.debug("no server time yet: %s", exc)
        if self._gateway_now is None:
            self._gateway_now = datetime.now(timezone.utc)
        return self._gateway_now

    # -- history -------------------------------------------------------------------------

    def _fetch_live(self, start: datetime, now: datetime) -> list[Bar]:
        """Fetch for settling; on a transient error, schedule a retry and return []."""
        try:
            bars = self._fetcher.fetch(start, now, now)
        except AuthenticationError as exc:
            raise ConnectionLost("the gateway session was lost", exc) from exc
        except MarketError as exc:
            if self._fetcher.fatal(exc):
                raise
            self._errors += 1
            wait = min(self.config.confirm_wait * 2.0**self._errors, MAX_RETRY_WAIT)
            self._notify(f"{self._label}: history request failed, retrying in {wait:.1f} s: {exc}")
            self._retry_at = time.monotonic() + wait
            return []
        self._errors = 0
        return bars

    # -- recovery ------------------------------------------------------------------------

    def _recover(self, broken: ConnectionLost) -> None:
        """CONNBROKEN, re-establish the session (``reconnect`` attempts), backfill the gap,
        then wait for data to say LIVE again; DISCONNECTED when out of attempts."""
        detail = f": {broken.error}" if broken.error is not None else ""
        self._set_status(FeedStatus.CONNBROKEN, broken.reason)
        self._notify(f"{self._label}: connection broken ({broken.reason}{detail}); reconnecting")
        attempt = 0
        while True:
            self._check_stop()
            attempt += 1
            try:
                if not self.client.validate_session():  # a stall needs no new session
                    self.client.reconnect()
                self._resubscribe()
                if self.config.backfill:
                    self._set_status(FeedStatus.DELAYED, "backfilling the gap")
                    self._catch_up()
                else:
                    self._notify(f"{self._label}: bars missed while disconnected are skipped")
                    self._skip_to_now()
                self._last_data = time.monotonic()
                self._notify(f"{self._label}: reconnected")
                return
            except (ConnectionLost, MarketError) as exc:
                error = exc.error if isinstance(exc, ConnectionLost) else exc
                if isinstance(error, MarketError) and self._fetcher.fatal(error):
                    raise error from None
                limit = self.config.reconnect
                if limit >= 0 and attempt > limit:
                    raise gave_up(self._label, attempt, error) from None
                self._notify(
                    f"{self._label}: reconnection attempt {attempt} failed ({error}); next in "
                    f"{self.config.reconnect_timeout:.1f} s"
                )
                self._fetcher.sleep(self.config.reconnect_timeout)

    def _resubscribe(self) -> None:
        assert self.poller is not None
        self.poller.unsubscribe(self.contract.conid, self)
        self._builder.reset()
        self._ticks.reset()
        self._built.clear()
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                break
        self.poller.subscribe(self.contract.conid, self)
        self._errors = 0
        self._retry_at = 0.0
