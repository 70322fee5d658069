"""The live engine of one feed: a pure state machine. No threads, no I/O, no clock reads.

Events go in (:mod:`.protocol`: market data, history answers and failures, a reconnection's
end, time passing) with the runner's monotonic time and the gateway's clock; actions come out
(deliver a bar or a status to the feed, tell the store, fetch history, reconnect, subscribe).
:class:`~.runner.StreamRunner` owns the thread and carries the actions out; tests drive the
engine directly with made-up times.

Phases::

    HISTORICAL ──────────────────────────────────────────────► ENDED
    BACKFILL ──► LIVE ──(session lost, stall, failures)──► BROKEN ──► BACKFILL (the gap)
                  │                                          │
                  └──────────(todate, fatal error)───────────┴──────► ENDED

Continuity: the :class:`~.timeline.Timeline` refuses anything at or before the last delivered
stamp (nothing repeats) and keeps a cursor at the end of the last settled interval; every
interval after the cursor is settled from the gateway's history once gateway time passes its
end (nothing is lost). A live interval is settled only by a history *answer*: a failed request
never counts, so an outage right after a bar completes leaves the interval unsettled and the
gap backfill after the reconnection confirms it. When the gateway keeps answering without the
bar, the bar built from snapshots is delivered, announced as unconfirmed, and checked against
later answers: a difference is reported, never left silent.

Waits are deadlines (:meth:`LiveEngine.wake_at`); one I/O action is outstanding at a time.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ..errors import (
    AuthenticationError,
    ConfigError,
    DataUnavailable,
    InvalidBarStop,
    MarketError,
    WebSocketUnavailable,
)
from ..models import Availability, Bar, Snapshot
from ..models.calendar import default_start
from ..timing import Backoff
from .builder import BarBuilder, TickBuilder
from .events import EndEvent, FeedStatus, StatusEvent, StreamConfig
from .protocol import (
    Action,
    Deliver,
    Fetch,
    HistoryAnswer,
    HistoryFailed,
    Input,
    MarketData,
    MarketDataFailed,
    Notify,
    Reconnect,
    ReconnectDone,
    SourceAlive,
    Subscribe,
)
from .timeline import Timeline

__all__ = [
    "CATCH_UP_PASSES",
    "EMPTY_ATTEMPTS",
    "FETCH_ATTEMPTS",
    "LiveEngine",
    "Phase",
]

#: History requests a backfill makes to catch up with bars that completed while it ran; any
#: bar still missing afterwards is settled by the live loop.
CATCH_UP_PASSES = 3
#: Answers without bars, for a span that must hold complete bars, before it is given up (the
#: gateway's "No data." is sometimes transient).
EMPTY_ATTEMPTS = 3
#: History requests that failed (each already retried by the HTTP layer) before a historical
#: run stops, or a live stream calls its connection broken.
FETCH_ATTEMPTS = 3
#: Snapshots kept while a backfill runs (replayed in order once it is done).
HELD_LIMIT = 20_000
#: Bars delivered unconfirmed that are still checked against later history answers.
UNCONFIRMED_LIMIT = 64
#: Back-off between failed history requests (seconds).
FETCH_BACKOFF = Backoff(initial=0.5, factor=2.0, maximum=30.0, jitter=0.1)


class Phase(enum.Enum):
    HISTORICAL = "historical"
    BACKFILL = "backfill"
    LIVE = "live"
    BROKEN = "broken"
    ENDED = "ended"


def reconnect_backoff(config: StreamConfig) -> Backoff:
    """Reconnection attempts ``config.reconnect_timeout`` seconds apart at first, doubling
    up to 30 s (or ``reconnect_timeout`` if longer); ``config.reconnect`` attempts (-1:
    forever)."""
    first = config.reconnect_timeout
    return Backoff(initial=first, factor=2.0, maximum=max(30.0, first), attempts=config.reconnect)


class LiveEngine:
    """Bars of one contract for one feed; see the module docstring.

    Args:
        config: what to fetch and how to recover.
        conid: the contract (market data of other conids is ignored).
        label: names the feed in messages (``"AAPL 1min"``).
        fetch_backoff: waits between failed history requests.
        connect_backoff: waits between reconnection attempts (default from ``config``).
    """

    def __init__(
        self,
        config: StreamConfig,
        *,
        conid: int,
        label: str,
        fetch_backoff: Backoff = FETCH_BACKOFF,
        connect_backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.conid = conid
        self.label = label
        self.fetch_backoff = fetch_backoff
        self.connect_backoff = connect_backoff or reconnect_backoff(config)
        self.timeline = Timeline(
            config.bar_timeframe,
            outside_rth=config.outside_rth,
            ticks=config.ticks,
            end=config.end,
            after=config.after,
        )
        self.phase = Phase.HISTORICAL if config.historical else Phase.BACKFILL
        self.status: FeedStatus | None = None
        #: The latest gateway time seen (tz-aware UTC).
        self.gateway_now: datetime | None = None
        self._builder = BarBuilder(config.bar_timeframe, outside_rth=config.outside_rth)
        self._ticks = TickBuilder(outside_rth=config.outside_rth)
        self._built: dict[datetime, Bar] = {}
        self._held: deque[Snapshot] = deque(maxlen=HELD_LIMIT)
        self._out: list[Action] = []
        self._now = 0.0
        self._pending: Fetch | Reconnect | None = None
        self._retry_at = 0.0
        self._retry: Callable[[], None] | None = None
        self._last_data: float | None = None
        self._poll_failures = 0
        self._fetch_failures = 0
        self._empties = 0
        self._passes = 0
        self._pass_from: datetime | None = None
        self._answers: dict[datetime, int] = {}
        self._unconfirmed: dict[datetime, tuple[Bar, int]] = {}
        self._reconnects = 0
        self._recovering = False
        #: What the latest market data said of itself (real time, delayed...).
        self._availability: Availability | None = None

    # -- driving ---------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    def start(self, now: float, gateway_now: datetime) -> list[Action]:
        """The first actions: a historical fetch, or a subscription and the backfill."""
        self._now = now
        self._observe(gateway_now)
        if self.config.historical:
            self._start_historical()
        else:
            self._start_live()
        self._advance()
        return self._take()

    def handle(self, item: Input, now: float, gateway_now: datetime | None) -> list[Action]:
        """Apply ``item`` at monotonic time ``now`` (seconds) and gateway time ``gateway_now``
        (None: unknown); return the actions to carry out, in order."""
        if self.phase is Phase.ENDED:
            return []
        self._now = now
        if gateway_now is not None:
            self._observe(gateway_now)
        if isinstance(item, MarketData):
            self._on_market(item.snapshot)
        elif isinstance(item, MarketDataFailed):
            self._on_market_failed(item.error)
        elif isinstance(item, SourceAlive):
            if self.phase in (Phase.LIVE, Phase.BACKFILL) and self._last_data is not None:
                self._last_data = self._now
        elif isinstance(item, HistoryAnswer):
            self._expect(item.request)
            self._on_answer(item.request, list(item.bars))
        elif isinstance(item, HistoryFailed):
            self._expect(item.request)
            self._on_fetch_failed(item.request, item.error)
        elif isinstance(item, ReconnectDone):
            self._expect(Reconnect())
            self._on_reconnect_done(item.error)
        self._advance()
        return self._take()

    def wake_at(self) -> float | None:
        """The monotonic time the engine next needs a :class:`~.protocol.TimePassed` (a retry,
        a reconnection attempt or a stall deadline), or None. The runner also ticks for bar
        boundaries, which are on the gateway's clock."""
        deadlines = []
        if self._pending is None and (self._retry is not None or self._retry_at > self._now):
            deadlines.append(self._retry_at)
        if self.phase is Phase.LIVE and self._last_data is not None:
            deadlines.append(self._last_data + self.config.stall_timeout)
        return min(deadlines) if deadlines else None

    def _take(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _expect(self, request: Fetch | Reconnect) -> None:
        if self._pending != request:
            raise AssertionError(f"{self.label}: answer to {request!r}, awaiting {self._pending!r}")
        self._pending = None

    def _issue(self, action: Fetch | Reconnect) -> None:
        assert self._pending is None, "one I/O action at a time"
        self._pending = action
        self._out.append(action)

    def _schedule(self, delay: float, retry: Callable[[], None] | None) -> None:
        self._retry_at = self._now + delay
        self._retry = retry

    def _advance(self) -> None:
        """Whatever is due now: a scheduled retry, the stall check, a reconnection, settling
        and the end of the span."""
        if self.phase is Phase.ENDED or self._pending is not None:
            return
        if self._retry is not None:
            if self._now < self._retry_at:
                return
            retry, self._retry = self._retry, None
            retry()
            if self._pending is not None or self.ended:
                return
        if self.phase is Phase.LIVE and self._stalled():
            pass  # now BROKEN
        if self.phase is Phase.BROKEN:
            if self._now >= self._retry_at:
                self._issue(Reconnect())
            return
        if self.phase is Phase.LIVE:
            self._settle()
        live = self.phase in (Phase.LIVE, Phase.BACKFILL)
        if live and self._pending is None and self.timeline.reached_end(self.gateway_now):
            self._finish("todate reached")

    # -- time ------------------------------------------------------------------------------

    def _observe(self, moment: datetime) -> None:
        if self.gateway_now is None or moment > self.gateway_now:
            self.gateway_now = moment

    @property
    def _gw(self) -> datetime:
        assert self.gateway_now is not None, "the runner passes the gateway time to start()"
        return self.gateway_now

    # -- status and the end ----------------------------------------------------------------

    def _status(self, status: FeedStatus, message: str = "") -> None:
        if status != self.status:
            self.status = status
            self._out.append(Deliver(StatusEvent(status, message)))

    def _notify(self, message: str) -> None:
        self._out.append(Notify(f"{self.label}: {message}"))

    def _finish(self, message: str) -> None:
        self._status(FeedStatus.DISCONNECTED, message)
        self._end(None)

    def _fail(self, error: MarketError, status: FeedStatus = FeedStatus.DISCONNECTED) -> None:
        self._notify(str(error))
        self._status(status, str(error))
        self._end(error)

    def _end(self, error: MarketError | None) -> None:
        self.phase = Phase.ENDED
        self._retry = None
        if not self.config.historical:
            self._out.append(Subscribe(False))
        self._out.append(Deliver(EndEvent(error)))

    @staticmethod
    def _fatal(error: MarketError) -> bool:
        """Errors no retry can fix: bad arguments, an invalid bar in strict mode."""
        return isinstance(error, (ConfigError, InvalidBarStop))

    # -- historical ------------------------------------------------------------------------

    def _start_historical(self) -> None:
        self._status(FeedStatus.DELAYED, "fetching historical bars")
        now = self._gw
        end = now if self.config.end is None else min(self.config.end, now)
        start = self._first_start(now)
        if start >= end or not self.timeline.expects_bars(start, end, now):
            # No session in the span (a weekend, a holiday, the future): nothing to ask.
            self._finish("historical data delivered")
            return
        self._issue(Fetch("historical", start, end, now, settles=True))

    def _first_start(self, now: datetime) -> datetime:
        if self.config.start is not None:
            return self.config.start
        return default_start(
            self.config.bar_timeframe,
            now,
            self.config.lookback_bars,
            outside_rth=self.config.outside_rth,
        )

    # -- backfill --------------------------------------------------------------------------

    def _start_live(self) -> None:
        self._out.append(Subscribe(True))
        self._last_data = self._now
        if self.config.backfill_start:
            self._begin_backfill("backfilling")
        else:
            self.timeline.skip_to(self._gw)
            self._go_live()

    def _begin_backfill(self, why: str) -> None:
        self._status(FeedStatus.DELAYED, why)
        self.phase = Phase.BACKFILL
        self._passes = 0
        self._empties = 0
        self._backfill_pass()

    def _backfill_pass(self) -> None:
        """Fetch from the resume point (the first unsettled interval, or the backfill start)
        up to gateway time now."""
        now = self._gw
        due = self.timeline.due()
        start = due.start if due is not None else self._first_start(now)
        end = now if self.config.end is None else min(now, self.config.end)
        first = self.timeline.cursor is None  # nothing settled yet: a first backfill
        if start >= end:
            if first:
                self.timeline.skip_to(now)
            self._go_live()
            return
        self._passes += 1
        self._pass_from = self.timeline.last
        self._issue(Fetch("backfill", start, end, now, settles=first))

    def _backfill_answer(self, request: Fetch, bars: list[Bar]) -> None:
        if not bars and self._empty_span(request):
            if self._empties < EMPTY_ATTEMPTS:
                self._schedule(self.fetch_backoff.delay(self._empties), self._redo(request))
                return
            self._notify(
                f"the gateway sent no bars for {_span(request)} after {self._empties} "
                "requests; nothing is delivered for that span (a holiday, no trades, or no "
                "history for this contract; if bars should exist, check the gateway and "
                "backfill again)"
            )
        self._empties = 0
        self._emit_all(bars, live=False)
        if self.timeline.cursor is None:
            self.timeline.skip_to(request.now)
        due = self.timeline.due()
        caught_up = due is None or self._gw < due.end
        progressed = self.timeline.last != self._pass_from
        if progressed and not caught_up and self._passes < CATCH_UP_PASSES:
            self._backfill_pass()
            return
        self._go_live()

    def _go_live(self) -> None:
        self.phase = Phase.LIVE
        self._passes = 0
        if self._recovering:
            self._recovering = False
            self._last_data = self._now
            self._notify("reconnected")
        held = list(self._held)
        self._held.clear()
        if not held and self._availability is not None:
            # A socket sends only changes: a quiet instrument may send nothing after a gap
            # backfill, and the feed is caught up, as live as its market data last said.
            self._report(self._availability)
        for snapshot in held:
            self._live_snapshot(snapshot)

    # -- market data -----------------------------------------------------------------------

    def _on_market(self, snapshot: Snapshot) -> None:
        if snapshot.conid != self.conid or self.phase in (Phase.HISTORICAL, Phase.BROKEN):
            return
        self._last_data = self._now
        self._poll_failures = 0
        if snapshot.timestamp is not None:
            self._observe(snapshot.timestamp)
        availability = snapshot.availability
        if availability.code and not availability.subscribed:
            self._fail(
                DataUnavailable(
                    f"no market data permission for {self.label} (availability "
                    f"{availability.code!r}: {availability.describe()}); subscribe to this "
                    "market's data in Client Portal > Settings > Market Data Subscriptions",
                    endpoint="/iserver/marketdata/snapshot",
                    conid=self.conid,
                ),
                FeedStatus.NOTSUBSCRIBED,
            )
            return
        if snapshot.is_preflight:  # no market fields yet
            return
        if self.phase is Phase.BACKFILL:
            self._held.append(snapshot)
            return
        self._live_snapshot(snapshot)

    def _live_snapshot(self, snapshot: Snapshot) -> None:
        self._availability = snapshot.availability
        self._report(snapshot.availability)
        if self.config.ticks:
            tick = self._ticks.update(snapshot)
            event = self.timeline.accept_tick(tick) if tick is not None else None
            if event is not None:
                self._out.append(Deliver(event))
            return
        for bar in self._builder.update(snapshot):
            self._built[bar.timestamp] = bar

    def _report(self, availability: Availability) -> None:
        if availability.delayed:
            self._status(FeedStatus.DELAYED, "the gateway sends delayed market data")
        else:
            self._status(FeedStatus.LIVE, availability.describe())

    def _on_market_failed(self, error: MarketError) -> None:
        if self.phase not in (Phase.LIVE, Phase.BACKFILL):
            return
        if isinstance(error, AuthenticationError):
            self._broken("the gateway session was lost", error)
            return
        if isinstance(error, WebSocketUnavailable):  # streaming='websocket' and no socket
            self._fail(error)
            return
        self._poll_failures += 1
        if self._poll_failures == 1 and self.phase is Phase.LIVE:
            self._notify(f"market data failed, retrying: {error}")

    def _stalled(self) -> bool:
        if self._last_data is None:
            return False
        quiet = self._now - self._last_data
        if quiet <= self.config.stall_timeout:
            return False
        self._broken(f"no market data for {quiet:.0f} s")
        return True

    # -- settling live intervals -----------------------------------------------------------

    def _settle(self) -> None:
        """Deliver every interval complete at gateway time: confirmed from history (one
        request for everything due), or as built from snapshots with ``confirm=False``."""
        if self.config.ticks or self._now < self._retry_at:
            return
        now = self._gw
        for bar in self._builder.flush(now):
            self._built[bar.timestamp] = bar
        cursor = self.timeline.cursor
        if cursor is not None:
            for stale in [t for t in self._built if t < cursor]:
                del self._built[stale]
        while True:
            due = self.timeline.due()
            if due is None or now < due.end:
                return
            if self.config.end is not None and due.start >= self.config.end:
                return
            built = self._built.pop(due.start, None)
            if built is not None and not self.config.confirm:
                self._emit(built, live=True)
                continue
            if built is not None:
                self._built[due.start] = built
            start = min([due.start, *self._unconfirmed])
            self._issue(Fetch("confirm", start, now, now))
            return

    def _confirm_answer(self, bars: list[Bar]) -> None:
        self._check_unconfirmed(bars)
        due = self.timeline.due()
        fresh = [bar for bar in bars if self.timeline.fresh(bar)]
        if fresh:
            self._answers.clear()
            for bar in fresh:
                self._built.pop(bar.timestamp, None)
            self._emit_all(fresh, live=True)
            if due is not None:
                self.timeline.settle_empty(due)  # no bar there in history: nothing traded
            return
        if due is None:
            return
        answers = self._answers.get(due.start, 0) + 1
        if answers < self.config.confirm_attempts:
            self._answers[due.start] = answers
            self._schedule(self.config.confirm_wait, None)
            return
        self._answers.pop(due.start, None)
        built = self._built.pop(due.start, None)
        if built is None:
            self.timeline.settle_empty(due)
            return
        self._emit(built, live=True)
        if len(self._unconfirmed) < UNCONFIRMED_LIMIT:
            self._unconfirmed[built.timestamp] = (built, 0)
        self._notify(
            f"the gateway's history has no bar for {due.start.isoformat()} after "
            f"{answers} answers; delivered the bar built from snapshots, unconfirmed "
            f"({built.describe()}); a later history answer that differs will be reported"
        )

    def _check_unconfirmed(self, bars: Iterable[Bar]) -> None:
        """Compare bars delivered unconfirmed with the history now answered."""
        if not self._unconfirmed:
            return
        history = {bar.timestamp: bar for bar in bars}
        for stamp, (delivered, answers) in list(self._unconfirmed.items()):
            found = history.get(stamp)
            if found is not None:
                del self._unconfirmed[stamp]
                if found != delivered:
                    self._notify(
                        f"correction: the bar delivered unconfirmed for {stamp.isoformat()} "
                        f"({delivered.describe()}) differs from the gateway's history "
                        f"({found.describe()}); a backtest over this period sees the history "
                        "bar"
                    )
            elif answers + 1 >= self.config.confirm_attempts:
                del self._unconfirmed[stamp]
                self._notify(
                    f"the gateway's history still has no bar for {stamp.isoformat()}; a "
                    "backtest over this period will not see the bar delivered live"
                )
            else:
                self._unconfirmed[stamp] = (delivered, answers + 1)

    # -- history answers and failures ------------------------------------------------------

    def _on_answer(self, request: Fetch, bars: list[Bar]) -> None:
        self._fetch_failures = 0
        if request.purpose == "historical":
            self._historical_answer(request, bars)
        elif request.purpose == "backfill":
            self._backfill_answer(request, bars)
        else:
            self._confirm_answer(bars)

    def _historical_answer(self, request: Fetch, bars: list[Bar]) -> None:
        if not bars and self._empty_span(request):
            if self._empties < EMPTY_ATTEMPTS:
                self._schedule(self.fetch_backoff.delay(self._empties), self._redo(request))
                return
            self._fail(
                DataUnavailable(
                    f'{self.label}: the gateway answered "No data." (no bars) for '
                    f"{_span(request)} {self._empties} times, although the exchange had "
                    "sessions then; likely causes: no market-data or history permission for "
                    "this contract (check Client Portal > Settings > Market Data "
                    "Subscriptions), the wrong contract (check the conid with 'ibkr-cp search "
                    "SYMBOL'), or a span before the contract traded or beyond IBKR's history",
                    endpoint="/iserver/marketdata/history",
                    conid=self.conid,
                )
            )
            return
        self._emit_all(bars, live=False)
        self._finish("historical data delivered")

    def _empty_span(self, request: Fetch) -> bool:
        """True (and counted) when an empty answer for ``request`` is suspicious: the answer
        is final for the span and the span holds a complete bar interval."""
        if not request.settles:
            return False
        if not self.timeline.expects_bars(request.start, request.end, request.now):
            return False
        self._empties += 1
        return True

    def _redo(self, request: Fetch) -> Callable[[], None]:
        return lambda: self._issue(request)

    def _on_fetch_failed(self, request: Fetch, error: MarketError) -> None:
        historical = request.purpose == "historical"
        if self._fatal(error) or (historical and isinstance(error, AuthenticationError)):
            self._fail(error)
            return
        if isinstance(error, AuthenticationError):
            self._broken("the gateway session was lost", error)
            return
        self._fetch_failures += 1
        if self._fetch_failures >= FETCH_ATTEMPTS:
            if historical:
                self._fail(error)
            else:
                self._broken("history requests keep failing", error)
            return
        wait = self.fetch_backoff.delay(self._fetch_failures)
        if self._fetch_failures == 1:
            self._notify(f"history request failed, retrying in {wait:.1f} s: {error}")
        if request.purpose == "confirm":
            self._schedule(wait, None)  # settling asks again; a failure is not an answer
        elif historical:
            self._schedule(wait, self._redo(request))
        else:
            self._schedule(wait, self._backfill_pass)

    # -- recovery --------------------------------------------------------------------------

    def _broken(self, reason: str, error: MarketError | None = None) -> None:
        """CONNBROKEN: forget what was being built, and reconnect (at once, then backing
        off)."""
        detail = f": {error}" if error is not None else ""
        self.phase = Phase.BROKEN
        self._status(FeedStatus.CONNBROKEN, reason)
        self._notify(f"connection broken ({reason}{detail}); reconnecting")
        self._builder.reset()
        self._ticks.reset()
        self._built.clear()
        self._held.clear()
        self._answers.clear()
        self._retry = None
        self._retry_at = self._now
        self._reconnects = 0
        self._fetch_failures = 0
        self._poll_failures = 0
        self._recovering = True

    def _on_reconnect_done(self, error: MarketError | None) -> None:
        if error is None:
            self._last_data = self._now
            if self.config.backfill:
                self._begin_backfill("backfilling the gap")
            else:
                self._notify("bars missed while disconnected are skipped")
                self.timeline.skip_to(self._gw)
                self._go_live()
            return
        if self._fatal(error):
            self._fail(error)
            return
        self._reconnects += 1
        if not self.connect_backoff.allows(self._reconnects):
            self._fail(gave_up(self.label, self._reconnects, error))
            return
        wait = self.connect_backoff.delay(self._reconnects)
        if self._reconnects == 1:
            limit = self.connect_backoff.attempts
            until = "until it is back" if limit < 0 else f"up to {limit} times"
            self._notify(
                f"reconnection failed ({error}); trying again {until}, at most "
                f"{self.connect_backoff.maximum:g} s apart; the next message says when it "
                "is back"
            )
        self._retry_at = self._now + wait

    # -- emitting --------------------------------------------------------------------------

    def _emit_all(self, bars: Iterable[Bar], *, live: bool) -> None:
        for bar in bars:
            self._emit(bar, live=live)

    def _emit(self, bar: Bar, *, live: bool) -> None:
        event = self.timeline.accept(bar, live=live)
        if event is not None:
            self._out.append(Deliver(event))

    def __repr__(self) -> str:
        return f"LiveEngine({self.label!r}, {self.phase.value})"


def gave_up(label: str, attempts: int, error: MarketError | None) -> MarketError:
    """The error that ends a stream after ``attempts`` failed reconnections."""
    cause = f" (last error: {error})" if error is not None else ""
    if isinstance(error, AuthenticationError):
        return AuthenticationError(
            f"{label}: gave up reconnecting after {attempts} attempt(s){cause}; log in to the "
            "gateway again and restart, or raise the store's reconnect count (-1: forever)",
            endpoint=error.endpoint,
            status=error.status,
        )
    return MarketError(
        f"{label}: gave up reconnecting after {attempts} attempt(s){cause}; check that the "
        "gateway is running and logged in, or raise the store's reconnect count (-1: forever)"
    )


def _span(request: Fetch) -> str:
    return f"{request.start.isoformat()}..{min(request.end, request.now).isoformat()}"


def describe_actions(actions: Iterable[Action]) -> list[Any]:
    """Plain tuples for test assertions and logs."""
    out: list[Any] = []
    for action in actions:
        if isinstance(action, Deliver):
            out.append(("deliver", action.event))
        elif isinstance(action, Notify):
            out.append(("notify", action.message))
        else:
            out.append(action)
    return out
