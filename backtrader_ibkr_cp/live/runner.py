"""The thread of one feed: carries out what its :class:`~.engine.LiveEngine` asks.

Threading model: a :class:`StreamRunner` owns ONE thread. Market data arrives on the market
source's thread (the snapshot poller, or the WebSocket reader) through :meth:`on_snapshot` /
:meth:`on_error`, which only append to a bounded inbox. The runner thread feeds the inbox to
the engine, carries out its actions (history requests and reconnections run here, one at a
time) and puts the feed's items into :attr:`StreamRunner.events`, a bounded :class:`Channel`
the backtrader feed drains without blocking. A reconnection drops the market data and errors
received before it (they describe the connection it replaced), so one loss breaks the feed
once however many reports of it were queued. A report that the brokerage session was lost
is also dropped when, by the time the runner gets to it, a check of the session begun after
the report arrived found the session usable: the client reopened it meanwhile (on this
feed's own history request, say), so the loss is over. Snapshots and heartbeats that
arrive while the runner waits for a request count as signs of life when it handles the
answer: a slow request is not a stalled feed. Every wait goes through the injected
clock and ends when the runner's cancel token is cancelled; :meth:`stop` cancels, leaves the
market source and joins.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from ..errors import AuthenticationError, MarketError
from ..models import Bar, Contract, Snapshot, Timeframe
from ..timing import SYSTEM_CLOCK, Cancelled, CancelToken, Clock, Signal
from .channel import Channel
from .engine import LiveEngine
from .events import EndEvent, StreamConfig, StreamEvent
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
    TimePassed,
)

__all__ = ["BarSource", "MarketListener", "MarketSource", "SessionControl", "StreamRunner"]

log = logging.getLogger(__name__)

#: Seconds between looks at the gateway's clock while nothing arrives (bar boundaries are on
#: the gateway's clock, which the runner cannot wait on directly).
TICK = 0.05
#: Feed items buffered before the runner waits for the feed to drain them.
EVENTS_LIMIT = 50_000
#: Market-data items buffered (the oldest are dropped beyond this).
INBOX_LIMIT = 10_000


class MarketListener(Protocol):
    """Receives market data of one conid on the source's thread. Must not block."""

    def on_snapshot(self, snapshot: Snapshot) -> None: ...

    def on_error(self, error: MarketError) -> None: ...


class MarketSource(Protocol):
    """Where market data comes from: the store's snapshot poller or its WebSocket."""

    def subscribe(self, conid: int, listener: MarketListener) -> None: ...

    def unsubscribe(self, conid: int, listener: MarketListener | None = None) -> None: ...


class SessionControl(Protocol):
    """What the runner needs of the GatewayClient for reconnections and the clock."""

    def validate_session(self) -> bool: ...

    def reconnect(self) -> bool: ...

    def server_time(self) -> datetime: ...

    def session_mark(self) -> int: ...

    def session_usable_since(self, mark: int) -> bool: ...


class BarSource(Protocol):
    """The :class:`~..history.service.BarService`."""

    def fetch(
        self,
        contract: Contract,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        now: datetime | None = None,
        outside_rth: bool = False,
    ) -> list[Bar]: ...


@dataclass(frozen=True)
class _SessionLost:
    """A report that the brokerage session was lost, with the session mark of its arrival."""

    failed: MarketDataFailed
    mark: int


_Received = MarketData | MarketDataFailed | SourceAlive | _SessionLost


class StreamRunner:
    """Runs one feed's engine on its own thread.

    Args:
        contract: the resolved contract.
        config: what to fetch and how to recover.
        bars: fetches history (validation and plugin transforms included).
        session: re-establishes the session; tells the gateway's time.
        market: the market-data source (None for a historical run).
        notify: receives messages for the store, on the runner thread.
        cancel: the store's token (the runner cancels a child of it).
        clock: monotonic time and waits.
    """

    def __init__(
        self,
        contract: Contract,
        config: StreamConfig,
        *,
        bars: BarSource,
        session: SessionControl,
        market: MarketSource | None,
        notify: Callable[[str], None] | None = None,
        cancel: CancelToken | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not config.historical and market is None:
            raise ValueError("a live stream needs a market-data source")
        tf = config.bar_timeframe
        self.label = f"{contract.symbol or contract.conid} {'ticks' if config.ticks else tf.bar}"
        self.contract = contract
        self.config = config
        self.engine = LiveEngine(config, conid=contract.conid, label=self.label)
        self._bars = bars
        self._session = session
        self._market = market
        self._notify = notify or (lambda message: None)
        self._clock = clock
        self._token = cancel.child() if cancel is not None else CancelToken()
        self._inbox: Channel[_Received] = Channel(INBOX_LIMIT, clock=clock)
        self.events: Channel[StreamEvent] = Channel(EVENTS_LIMIT, clock=clock)
        #: Set once the thread has ended (after its last item was queued).
        self.finished = Signal()
        self._thread: threading.Thread | None = None
        self._subscribed = False
        #: Counts reconnections: market data taken from the inbox before one is stale after it.
        self._reconnections = 0
        #: Counts snapshots and heartbeats received (the source's threads; only change matters).
        self._arrivals = 0

    # -- what the feed reads ---------------------------------------------------------------

    @property
    def gateway_now(self) -> datetime | None:
        """The latest gateway time the stream has seen (tz-aware UTC), or None."""
        return self.engine.gateway_now

    @property
    def cancel_token(self) -> CancelToken:
        """Cancelled when the runner stops (a child of the store's token)."""
        return self._token

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._main, name=f"ibkr-cp-stream-{self.label}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Cancel, leave the market source, and wait for the thread (at most ``timeout``
        seconds; 0 only signals)."""
        self._token.cancel("the feed stopped")
        self._leave()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and timeout != 0:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("stream %s did not stop within %s s", self.label, timeout)

    # -- MarketListener (the source's thread) ----------------------------------------------

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self._arrivals += 1
        self._inbox.offer(MarketData(snapshot))

    def on_error(self, error: MarketError) -> None:
        if isinstance(error, AuthenticationError):
            self._inbox.offer(_SessionLost(MarketDataFailed(error), self._session.session_mark()))
        else:
            self._inbox.offer(MarketDataFailed(error))

    def on_alive(self) -> None:
        self._arrivals += 1
        self._inbox.offer(SourceAlive())

    # -- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._carry_out(self.engine.start(self._clock.now(), self._gateway_now()))
            while not self.engine.ended:
                self._token.raise_if_cancelled("the stream")
                items: list[Input | _SessionLost] = list(self._wait_for_input())
                reconnections = self._reconnections
                for item in items or [TimePassed()]:
                    self._token.raise_if_cancelled("the stream")
                    if isinstance(item, _SessionLost):
                        if self._session.session_usable_since(item.mark):
                            log.debug("%s: %s (reopened since)", self.label, item.failed.error)
                            continue
                        item = item.failed
                    self._carry_out(self._handle(item))
                    if self.engine.ended or self._reconnections != reconnections:
                        # The rest arrived before the reconnection: stale, as the inbox it
                        # drained (a second report of the same loss would break it again).
                        break
        except Cancelled:
            pass
        except Exception as exc:
            if not self._token.cancelled:
                log.exception("stream %s failed", self.label)
                error = MarketError(
                    f"{self.label}: the live stream failed unexpectedly ({type(exc).__name__}: "
                    f"{exc}); the feed stopped; please report this"
                )
                self._notify(str(error))
                self._deliver_quietly(EndEvent(error))
        finally:
            self._leave()
            self.finished.set()

    def _wait_for_input(self) -> list[_Received]:
        wake = self.engine.wake_at()
        timeout = TICK if wake is None else min(TICK, max(0.0, wake - self._clock.now()))
        if self._inbox.empty() and timeout > 0:
            self._clock.wait(timeout, self._inbox.readable, self._token)
        return self._inbox.drain()

    def _handle(self, item: Input) -> list[Action]:
        return self.engine.handle(item, self._clock.now(), self._gateway_now())

    def _carry_out(self, actions: list[Action]) -> None:
        work = deque(actions)
        while work:
            action = work.popleft()
            arrivals = self._arrivals
            follow_up = self._do(action)
            if follow_up is not None:
                self._token.raise_if_cancelled("the stream")
                if self._arrivals != arrivals:
                    # Market data arrived while this request ran (it waits in the inbox): the
                    # source is alive however long the request took, so the engine must not
                    # take the time for a stall when it gets the answer.
                    work.extend(self._handle(SourceAlive()))
                work.extend(self._handle(follow_up))

    def _do(self, action: Action) -> Input | None:
        if isinstance(action, Deliver):
            self.events.put(action.event, self._token)
        elif isinstance(action, Notify):
            self._notify(action.message)
        elif isinstance(action, Fetch):
            return self._fetch(action)
        elif isinstance(action, Reconnect):
            return self._reconnect()
        elif isinstance(action, Subscribe):
            if action.on:
                self._join()
            else:
                self._leave()
        return None

    def _fetch(self, request: Fetch) -> Input:
        try:
            bars = self._bars.fetch(
                self.contract,
                self.config.bar_timeframe,
                request.start,
                request.end,
                now=request.now,
                outside_rth=self.config.outside_rth,
            )
        except MarketError as exc:
            self._token.raise_if_cancelled("the stream")  # closing fails requests in flight
            return HistoryFailed(request, exc)
        return HistoryAnswer(request, tuple(bars))

    def _reconnect(self) -> Input:
        try:
            if not self._session.validate_session():  # a stall needs no new session
                self._session.reconnect()
            self._leave()
            self._inbox.drain()
            self._reconnections += 1
            self._join()
        except MarketError as exc:
            self._token.raise_if_cancelled("the stream")
            return ReconnectDone(exc)
        return ReconnectDone(None)

    def _join(self) -> None:
        if self._market is not None and not self._token.cancelled:
            self._market.subscribe(self.contract.conid, self)
            self._subscribed = True

    def _leave(self) -> None:
        if self._market is not None and self._subscribed:
            self._subscribed = False
            self._market.unsubscribe(self.contract.conid, self)

    def _gateway_now(self) -> datetime:
        """The gateway's clock; the local one until the gateway has answered once."""
        try:
            return self._session.server_time()
        except MarketError as exc:
            log.debug("no server time yet: %s", exc)
            return datetime.now(timezone.utc)

    def _deliver_quietly(self, event: StreamEvent) -> None:
        if len(self.events) < self.events.maxsize:
            self.events.offer(event)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"StreamRunner({self.label!r}, {state})"
