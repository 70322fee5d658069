"""StreamRunner, the thread that carries out a feed engine's actions: what it does with market
data that arrived while it was busy (a history request, a reconnection).

The runner's collaborators are stand-ins for its own protocols (bars, session, market source)
so a test decides exactly when a history request returns; time is a FakeClock, so "the runner
is idle" is a wait on that clock, never a sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp.errors import AuthenticationError, MarketError
from backtrader_ibkr_cp.live.events import StreamConfig
from backtrader_ibkr_cp.live.runner import MarketListener, StreamRunner
from backtrader_ibkr_cp.models import Bar, Contract, Timeframe
from backtrader_ibkr_cp.timing import FakeClock

#: Real seconds a test waits for the runner thread before it fails.
WAIT = 10.0
#: The gateway's time throughout (Tuesday 2024-03-05 10:00 New York).
GATEWAY_NOW = datetime(2024, 3, 5, 15, 0, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)


class Bars:
    """History: every 1-minute bar completed by the gateway's time; the first request waits
    until the test lets it answer."""

    def __init__(self) -> None:
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
        if self.calls == 1:
            self.first_entered.set()
            assert self.first_answers.wait(WAIT), "the test never let the request answer"
        bars, at = [], start
        while at < end and at + MINUTE <= GATEWAY_NOW:
            bars.append(Bar(at, 100.0, 101.0, 99.0, 100.5, 1000.0))
            at += MINUTE
        return bars


class Session:
    def __init__(self) -> None:
        self.reconnects = 0

    def validate_session(self) -> bool:
        return False

    def reconnect(self) -> bool:
        self.reconnects += 1
        return True

    def server_time(self) -> datetime:
        return GATEWAY_NOW


class Market:
    def __init__(self) -> None:
        self.joins = 0

    def subscribe(self, conid: int, listener: MarketListener) -> None:
        self.joins += 1

    def unsubscribe(self, conid: int, listener: MarketListener | None = None) -> None:
        pass


@pytest.fixture
def parts() -> Iterator[tuple[StreamRunner, Bars, Session, FakeClock, list[str]]]:
    bars, session, clock = Bars(), Session(), FakeClock()
    messages: list[str] = []
    runner = StreamRunner(
        Contract(265598, "AAPL"),
        StreamConfig(timeframe=Timeframe.MINUTE_1, start=GATEWAY_NOW - 10 * MINUTE),
        bars=bars,
        session=session,
        market=Market(),
        notify=messages.append,
        clock=clock,
    )
    try:
        yield runner, bars, session, clock, messages
    finally:
        bars.first_answers.set()
        runner.stop()


def test_errors_that_arrived_before_a_reconnection_do_not_break_the_feed_again(
    parts: tuple[StreamRunner, Bars, Session, FakeClock, list[str]],
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
