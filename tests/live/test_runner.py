"""StreamRunner, the thread that carries out a feed engine's actions: what it does with market
data that arrived while it was busy (a history request, a reconnection).

The runner's collaborators are stand-ins for its own protocols (bars, session, market source)
so a test decides exactly when a history request returns; time is a FakeClock, so "the runner
is idle" is a wait on that clock, never a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp.client.session import SessionChecks
from backtrader_ibkr_cp.errors import AuthenticationError, MarketError
from backtrader_ibkr_cp.live.events import StreamConfig
from backtrader_ibkr_cp.live.runner import MarketListener, StreamRunner
from backtrader_ibkr_cp.models import Bar, Contract, Snapshot, Timeframe
from backtrader_ibkr_cp.timing import FakeClock

#: Real seconds a test waits for the runner thread before it fails.
WAIT = 10.0
#: The gateway's time throughout (Tuesday 2024-03-05 10:00 New York).
GATEWAY_NOW = datetime(2024, 3, 5, 15, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


class Bars:
    """History: every 1-minute bar completed by the gateway's time; request number ``held``
    (the first by default) waits until the test lets it answer."""

    def __init__(self, held: int = 1) -> None:
        self.held = held
        self.calls = 0
        self.first_entered = threading.Event()
        self.first_answers = threading.Event()

    def fetch(
        self,
        contract: Contract,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        now: datetime | None = None,
        outside_rth: bool = False,
    ) -> list[Bar]:
        self.calls += 1
        if self.calls == self.held:
            self.first_entered.set()
            assert self.first_answers.wait(WAIT), "the test never let the request answer"
        bars, at, complete = [], start, now or GATEWAY_NOW
        while at < end and at + MINUTE <= complete:
            bars.append(Bar(at, 100.0, 101.0, 99.0, 100.5, 1000.0))
            at += MINUTE
        return bars


class Session:
    """The client's session: never valid without a reconnection; its checks are the test's
    to number and answer (``checks``)."""

    def __init__(self) -> None:
        self.reconnects = 0
        self.reconnected = threading.Event()
        self.checks = SessionChecks()
        self.now = GATEWAY_NOW

    def session_mark(self) -> int:
        return self.checks.mark()

    def session_usable_since(self, mark: int) -> bool:
        return self.checks.usable_since(mark)

    def validate_session(self) -> bool:
        return False

    def reconnect(self) -> bool:
        self.reconnects += 1
        self.reconnected.set()
        return True

    def server_time(self) -> datetime:
        return self.now


class Market:
    def __init__(self) -> None:
        self.joins = 0

    def subscribe(self, conid: int, listener: MarketListener) -> None:
        self.joins += 1

    def unsubscribe(self, conid: int, listener: MarketListener | None = None) -> None:
        pass


Parts = tuple[StreamRunner, Bars, Session, FakeClock, list[str]]


@pytest.fixture
def make_parts() -> Iterator[Callable[..., Parts]]:
    """Builds a runner on stand-ins (``held``: which history request waits for the test;
    ``stall_timeout``: the feed's), each stopped at teardown."""
    made: list[Parts] = []

    def make(*, held: int = 1, stall_timeout: float = 30.0) -> Parts:
        bars, session, clock = Bars(held=held), Session(), FakeClock()
        messages: list[str] = []
        config = StreamConfig(
            timeframe=Timeframe.MINUTE_1,
            start=GATEWAY_NOW - 10 * MINUTE,
            stall_timeout=stall_timeout,
        )
        runner = StreamRunner(
            Contract(265598, "AAPL"),
            config,
            bars=bars,
            session=session,
            market=Market(),
            notify=messages.append,
            clock=clock,
        )
        made.append((runner, bars, session, clock, messages))
        return made[-1]

    yield make
    for runner, bars, *_ in made:
        bars.first_answers.set()
        runner.stop()


@pytest.fixture
def parts(make_parts: Callable[..., Parts]) -> Parts:
    return make_parts()


def test_errors_that_arrived_before_a_reconnection_do_not_break_the_feed_again(
    parts: Parts,
) -> None:
    """Two reports of one lost session arrive while the runner waits for a history answer.
    The first breaks the feed and it reconnects; the second is as old as the first and must
    not break the reconnected feed again (it did: the soak saw a feed broken once per stale
    report, the last one after it had caught up and was LIVE)."""
    runner, bars, session, clock, messages = parts
    runner.start()
    assert bars.first_entered.wait(WAIT)
    lost: list[MarketError] = [
        AuthenticationError("the brokerage session ended (another login took it)"),
        AuthenticationError("the gateway refused the WebSocket log-in"),
    ]
    for error in lost:
        runner.on_error(error)
    bars.first_answers.set()
    clock.wait_for_sleepers(1, timeout=WAIT)  # every item handled: the runner waits for more

    broken = [m for m in messages if "connection broken" in m]
    assert len(broken) == 1 and "another login took it" in broken[0], messages
    assert session.reconnects == 1


def test_a_lost_session_reopened_before_the_runner_reads_the_report_does_not_break_the_feed(
    parts: Parts,
) -> None:
    """The socket reports the session lost while the runner waits for a history answer;
    meanwhile the client reopens the session (that very request got a 401 and reopened it).
    By the time the runner reads the report, the loss is over: breaking the feed for it
    only costs a reconnection and a backfill (the soak saw a feed broken that way right after
    it had caught up)."""
    runner, bars, session, clock, messages = parts
    runner.start()
    assert bars.first_entered.wait(WAIT)
    runner.on_error(AuthenticationError("the brokerage session ended (it expired or was reset)"))
    session.checks.usable(session.checks.begin())  # reopened after the report
    bars.first_answers.set()
    clock.wait_for_sleepers(1, timeout=WAIT)

    assert not [m for m in messages if "connection broken" in m], messages
    assert session.reconnects == 0

    # A loss reported after that check is not over: it breaks the feed.
    runner.on_error(AuthenticationError("the brokerage session ended (another login took it)"))
    assert session.reconnected.wait(WAIT), messages


def test_a_check_already_on_its_way_when_the_loss_is_reported_does_not_make_it_stale(
    parts: Parts,
) -> None:
    """A check sent before the loss was reported may have been answered before the loss
    happened, even when its answer arrives after the report: the report still counts."""
    runner, bars, session, clock, messages = parts
    runner.start()
    assert bars.first_entered.wait(WAIT)
    in_flight = session.checks.begin()
    runner.on_error(AuthenticationError("the brokerage session ended (it expired or was reset)"))
    session.checks.usable(in_flight)
    bars.first_answers.set()
    clock.wait_for_sleepers(1, timeout=WAIT)

    broken = [m for m in messages if "connection broken" in m]
    assert len(broken) == 1 and "expired" in broken[0], messages
    assert session.reconnects == 1


@pytest.mark.parametrize("data_meanwhile", [True, False], ids=["data-meanwhile", "silence"])
def test_a_slow_history_request_is_not_a_stall_when_market_data_kept_arriving(
    make_parts: Callable[..., Parts], data_meanwhile: bool
) -> None:
    """A LIVE feed's confirmation request takes longer than the stall timeout (retries, a
    pacing hold) while snapshots keep arriving: they wait in the inbox, and the feed must not
    be called stalled when the answer comes (it was: the engine judged the quiet time before
    it saw the snapshots waiting behind the answer). With no data meanwhile, it is a stall."""
    runner, bars, session, clock, messages = make_parts(held=2, stall_timeout=10.0)
    runner.start()
    clock.wait_for_sleepers(1, timeout=WAIT)  # backfilled, LIVE, waiting for data
    session.now = GATEWAY_NOW + MINUTE + timedelta(seconds=1)  # the 15:00 bar is due
    runner.on_snapshot(Snapshot(265598, timestamp=session.now, last=100.5))
    assert bars.first_entered.wait(WAIT)  # its confirmation request is held
    clock.advance(20.0)  # twice the stall timeout
    if data_meanwhile:
        runner.on_snapshot(Snapshot(265598, timestamp=session.now, last=100.6))
    bars.first_answers.set()
    clock.wait_for_sleepers(1, timeout=WAIT)

    stalls = [m for m in messages if "no market data" in m]
    assert len(stalls) == (0 if data_meanwhile else 1), messages
    assert bars.calls >= 2
