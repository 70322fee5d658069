"""LiveEngine, the pure state machine of one feed: events in, actions out, made-up times.

No thread, no HTTP, no sleep: each test plays the runner's part by hand (answering the
engine's Fetch and Reconnect actions) and checks the actions that come out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from backtrader_ibkr_cp.errors import (
    AuthenticationError,
    ConfigError,
    DataUnavailable,
    GatewayConnectionError,
    InvalidBarStop,
)
from backtrader_ibkr_cp.live.engine import EMPTY_ATTEMPTS, FETCH_ATTEMPTS, LiveEngine, Phase
from backtrader_ibkr_cp.live.events import BarEvent, EndEvent, FeedStatus, StatusEvent, StreamConfig
from backtrader_ibkr_cp.live.protocol import (
    Action,
    Deliver,
    Fetch,
    HistoryAnswer,
    HistoryFailed,
    MarketData,
    MarketDataFailed,
    Notify,
    Reconnect,
    ReconnectDone,
    Subscribe,
    TimePassed,
)
from backtrader_ibkr_cp.models import Availability, Bar, Snapshot, Timeframe
from backtrader_ibkr_cp.timing import Backoff

NY = ZoneInfo("America/New_York")
CONID = 265598
NO_JITTER = Backoff(initial=0.5, factor=2.0, maximum=30.0, jitter=0.0)


def ny(hour: int, minute: int, second: float = 0.0, day: int = 5) -> datetime:
    """Tuesday 2024-03-05 (EST) at ``hour:minute`` New York, as UTC."""
    base = datetime(2024, 3, day, hour, minute, tzinfo=NY).astimezone(timezone.utc)
    return base + timedelta(seconds=second)


def bar(minute: int, price: float = 100.0, hour: int = 9, volume: float = 1000.0) -> Bar:
    return Bar(ny(hour, minute), price, price + 1, price - 1, price, volume)


def snap(when: datetime, last: float, volume: float, availability: str = "RpB") -> Snapshot:
    return Snapshot(
        CONID, timestamp=when, last=last, volume=volume, availability=Availability(availability)
    )


def engine(**config: object) -> LiveEngine:
    defaults: dict[str, object] = {"timeframe": Timeframe.MINUTE_1, "start": ny(9, 30)}
    defaults.update(config)
    return LiveEngine(
        StreamConfig(**defaults),  # type: ignore[arg-type]
        conid=CONID,
        label="AAPL 1min",
        fetch_backoff=NO_JITTER,
    )


def delivered(actions: Sequence[Action]) -> list[object]:
    return [a.event for a in actions if isinstance(a, Deliver)]


def bars_of(actions: Sequence[Action]) -> list[Bar]:
    return [e.bar for e in delivered(actions) if isinstance(e, BarEvent)]


def statuses(actions: Sequence[Action]) -> list[FeedStatus]:
    return [e.status for e in delivered(actions) if isinstance(e, StatusEvent)]


def messages(actions: Sequence[Action]) -> list[str]:
    return [a.message for a in actions if isinstance(a, Notify)]


def fetches(actions: Sequence[Action]) -> list[Fetch]:
    return [a for a in actions if isinstance(a, Fetch)]


def only_fetch(actions: Sequence[Action]) -> Fetch:
    found = fetches(actions)
    assert len(found) == 1, actions
    return found[0]


def end_of(actions: Sequence[Action]) -> EndEvent:
    ends = [e for e in delivered(actions) if isinstance(e, EndEvent)]
    assert len(ends) == 1, actions
    return ends[0]


# -- historical ------------------------------------------------------------------------------


def test_a_historical_run_fetches_its_span_once_delivers_and_ends() -> None:
    e = engine(historical=True, end=ny(9, 35))
    out = e.start(0.0, ny(12, 0))
    assert statuses(out) == [FeedStatus.DELAYED]
    request = only_fetch(out)
    assert (request.start, request.end, request.settles) == (ny(9, 30), ny(9, 35), True)
    out = e.handle(HistoryAnswer(request, tuple(bar(m) for m in range(30, 35))), 0.1, None)
    assert [b.timestamp for b in bars_of(out)] == [ny(9, m) for m in range(30, 35)]
    assert statuses(out) == [FeedStatus.DISCONNECTED]
    assert end_of(out).error is None and e.ended


def test_a_span_without_sessions_ends_empty_without_a_request() -> None:
    """A weekend span: nothing to ask (bug 6's other half: no request, no error)."""
    e = engine(historical=True, start=ny(10, 0, day=9), end=ny(16, 0, day=10))
    out = e.start(0.0, ny(12, 0, day=11))
    assert fetches(out) == []
    assert end_of(out).error is None


def test_an_empty_answer_for_a_span_with_sessions_is_asked_again_then_raises() -> None:
    """Bug 6: "No data." for a month of a listed stock returned []. Now it is asked again
    and then ends with DataUnavailable saying what IBKR answered and the likely causes."""
    e = engine(historical=True, end=ny(16, 0))
    request = only_fetch(e.start(0.0, ny(17, 0)))
    now = 0.0
    for attempt in range(1, EMPTY_ATTEMPTS):
        out = e.handle(HistoryAnswer(request, ()), now, None)
        assert fetches(out) == [] and not e.ended
        wait = e.wake_at()
        assert wait == pytest.approx(now + NO_JITTER.delay(attempt))
        now = wait
        assert only_fetch(e.handle(TimePassed(), now, None)) == request
    out = e.handle(HistoryAnswer(request, ()), now, None)
    error = end_of(out).error
    assert isinstance(error, DataUnavailable)
    assert "No data." in str(error) and "permission" in str(error) and "conid" in str(error)


def test_historical_failures_are_retried_then_raised() -> None:
    e = engine(historical=True, end=ny(9, 35))
    request = only_fetch(e.start(0.0, ny(12, 0)))
    boom = GatewayConnectionError("connection refused; is the gateway running?")
    now = 0.0
    for _ in range(FETCH_ATTEMPTS - 1):
        out = e.handle(HistoryFailed(request, boom), now, None)
        assert not e.ended
        now = e.wake_at() or now
        assert only_fetch(e.handle(TimePassed(), now, None)) == request
    out = e.handle(HistoryFailed(request, boom), now, None)
    assert end_of(out).error is boom
    assert len([m for m in messages(out) if "refused" in m]) == 1


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("bad"),
        InvalidBarStop("invalid bar ... strict=True"),
        AuthenticationError("not logged in", status=401),
    ],
)
def test_errors_no_retry_can_fix_end_a_historical_run_at_once(error: Exception) -> None:
    e = engine(historical=True, end=ny(9, 35))
    request = only_fetch(e.start(0.0, ny(12, 0)))
    out = e.handle(HistoryFailed(request, error), 0.0, None)  # type: ignore[arg-type]
    assert end_of(out).error is error


# -- backfill and live -----------------------------------------------------------------------


def live_engine(now: datetime | None = None, **config: object) -> tuple[LiveEngine, Fetch]:
    e = engine(stall_timeout=30.0, **config)
    out = e.start(0.0, now or ny(9, 33, 10))
    assert out[0] == Subscribe(True)
    assert statuses(out) == [FeedStatus.DELAYED]
    return e, only_fetch(out)


def test_backfill_then_live_bars_confirmed_from_history() -> None:
    e, request = live_engine()
    assert (request.purpose, request.start, request.settles) == ("backfill", ny(9, 30), True)
    out = e.handle(HistoryAnswer(request, (bar(30), bar(31), bar(32))), 0.1, None)
    assert [b.timestamp for b in bars_of(out)] == [ny(9, 30), ny(9, 31), ny(9, 32)]
    assert e.phase is Phase.LIVE
    # snapshots: LIVE, the 09:33 bar is built, then its interval ends at gateway 09:34:00
    out = e.handle(MarketData(snap(ny(9, 33, 20), 100.0, 5000)), 0.2, None)
    assert statuses(out) == [FeedStatus.LIVE]
    out = e.handle(MarketData(snap(ny(9, 34, 0.5), 100.5, 5100)), 0.3, None)
    confirm = only_fetch(out)
    assert (confirm.purpose, confirm.start) == ("confirm", ny(9, 33))
    history = bar(33, 100.2)
    out = e.handle(HistoryAnswer(confirm, (history,)), 0.4, None)
    assert bars_of(out) == [history]
    assert [e.live for e in delivered(out) if isinstance(e, BarEvent)] == [True]


def test_snapshots_during_a_backfill_are_held_until_it_is_done() -> None:
    e, request = live_engine()
    out = e.handle(MarketData(snap(ny(9, 33, 20), 100.0, 5000)), 0.2, None)
    assert statuses(out) == []  # still DELAYED: no LIVE before the backfill is in
    out = e.handle(HistoryAnswer(request, (bar(30), bar(31), bar(32))), 0.3, None)
    assert statuses(out) == [FeedStatus.LIVE]


def test_a_gap_backfill_with_no_market_data_after_it_reports_live_again() -> None:
    """A socket sends market data only when a field changes: after the gap backfill of a
    quiet instrument no snapshot comes, and the feed stayed DELAYED ("backfilling the gap")
    although it was caught up. It now reports what the last market data said."""
    e, request = live_engine(ny(9, 31, 10))
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    out = e.handle(MarketData(snap(ny(9, 31, 20), 100.0, 5000)), 0.2, None)
    assert statuses(out) == [FeedStatus.LIVE]
    out = e.handle(MarketDataFailed(AuthenticationError("no session", status=401)), 1.0, None)
    assert statuses(out) == [FeedStatus.CONNBROKEN]
    out = e.handle(ReconnectDone(None), 2.0, ny(9, 33, 5))
    assert statuses(out) == [FeedStatus.DELAYED]
    out = e.handle(HistoryAnswer(only_fetch(out), (bar(31), bar(32))), 3.0, None)
    assert bars_of(out) == [bar(31), bar(32)]
    assert statuses(out) == [FeedStatus.LIVE]
    assert e.phase is Phase.LIVE


def test_a_gap_backfill_keeps_delayed_market_data_delayed() -> None:
    e, request = live_engine(ny(9, 31, 10))
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    out = e.handle(MarketData(snap(ny(9, 31, 20), 100.0, 5000, availability="DpB")), 0.2, None)
    assert statuses(out) == []  # DELAYED since the start, and delayed data keeps it so
    e.handle(MarketDataFailed(AuthenticationError("no session", status=401)), 1.0, None)
    out = e.handle(ReconnectDone(None), 2.0, ny(9, 33, 5))
    assert statuses(out) == [FeedStatus.DELAYED]  # from CONNBROKEN: backfilling the gap
    out = e.handle(HistoryAnswer(only_fetch(out), (bar(31), bar(32))), 3.0, None)
    assert statuses(out) == [] and e.status is FeedStatus.DELAYED and e.phase is Phase.LIVE


def test_a_confirmation_that_fails_is_not_an_answer_and_the_gap_backfill_confirms_it() -> None:
    """Bug 10: the gateway went away right after a bar completed; after confirm_attempts
    failed requests the bar built from snapshots was delivered, unconfirmed, and never
    replaced. Failures now count as no answer: the stream reconnects and the gap backfill
    brings the gateway's bar."""
    e, request = live_engine(ny(9, 31, 10))
    e.handle(MarketData(snap(ny(9, 30, 50), 99.0, 4000)), 0.05, None)  # watched from 09:31
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    e.handle(MarketData(snap(ny(9, 31, 20), 100.0, 5000)), 0.2, None)
    e.handle(MarketData(snap(ny(9, 31, 40), 101.0, 5200)), 0.3, None)
    out = e.handle(MarketData(snap(ny(9, 32, 0.2), 101.0, 5300)), 0.4, None)
    confirm = only_fetch(out)
    down = GatewayConnectionError("connection refused")
    now = 0.4
    delivered_bars: list[Bar] = []
    for _ in range(FETCH_ATTEMPTS - 1):
        out = e.handle(HistoryFailed(confirm, down), now, None)
        delivered_bars += bars_of(out)
        now = e.wake_at() or now
        out = e.handle(TimePassed(), now, None)
        confirm = only_fetch(out)
    out = e.handle(HistoryFailed(confirm, down), now, None)
    delivered_bars += bars_of(out)
    assert delivered_bars == []  # the built bar was never delivered
    assert statuses(out) == [FeedStatus.CONNBROKEN]
    assert out[-1] == Reconnect()
    out = e.handle(ReconnectDone(None), now + 1, ny(9, 33, 5))
    gap = only_fetch(out)
    assert (gap.purpose, gap.start) == ("backfill", ny(9, 31))
    truth = bar(31, 100.3)
    out = e.handle(HistoryAnswer(gap, (truth, bar(32))), now + 2, None)
    assert bars_of(out) == [truth, bar(32)]
    assert any(m.endswith("reconnected") for m in messages(out))


def test_a_bar_history_never_has_is_delivered_unconfirmed_and_a_difference_is_reported() -> None:
    e, request = live_engine(ny(9, 31, 10))
    e.handle(MarketData(snap(ny(9, 30, 50), 99.0, 4000)), 0.05, None)  # watched from 09:31
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    e.handle(MarketData(snap(ny(9, 31, 20), 100.0, 5000)), 0.2, None)
    out = e.handle(MarketData(snap(ny(9, 32, 0.2), 101.0, 5300)), 0.3, None)
    confirm = only_fetch(out)
    now = 0.3
    out = e.handle(HistoryAnswer(confirm, ()), now, None)
    for _ in range(e.config.confirm_attempts - 1):
        now = e.wake_at() or now
        confirm = only_fetch(e.handle(TimePassed(), now, None))
        out = e.handle(HistoryAnswer(confirm, ()), now, None)
    built = bars_of(out)
    assert [b.timestamp for b in built] == [ny(9, 31)]
    assert any("unconfirmed" in m for m in messages(out))
    # the next confirmation starts at the unconfirmed bar, and the difference is reported
    out = e.handle(MarketData(snap(ny(9, 33, 0.2), 101.0, 5400)), now + 1, None)
    confirm = only_fetch(out)
    assert confirm.start == ny(9, 31)
    out = e.handle(HistoryAnswer(confirm, (bar(31, 99.0), bar(32))), now + 2, None)
    assert any(m.startswith("AAPL 1min: correction") for m in messages(out))
    assert bars_of(out) == [bar(32)]


def test_a_lost_session_on_the_poll_breaks_then_reconnects_with_one_message_per_state() -> None:
    e, request = live_engine(ny(9, 31, 10))
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    lost = AuthenticationError("no session", status=401)
    out = e.handle(MarketDataFailed(lost), 1.0, None)
    assert statuses(out) == [FeedStatus.CONNBROKEN] and out[-1] == Reconnect()
    down = GatewayConnectionError("connection refused")
    now = 1.0
    notes: list[str] = []
    for _ in range(5):
        out = e.handle(ReconnectDone(down), now, None)
        notes += messages(out)
        now = e.wake_at() or now
        assert e.handle(TimePassed(), now, None) == [Reconnect()]
    assert len(notes) == 1 and "until it is back" in notes[0]
    assert e.phase is Phase.BROKEN  # reconnect=-1 by default: never gives up


def test_a_finite_reconnect_budget_ends_with_an_explained_error() -> None:
    e, request = live_engine(ny(9, 31, 10), reconnect=2)
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    e.handle(MarketDataFailed(AuthenticationError("no session", status=401)), 1.0, None)
    down = GatewayConnectionError("connection refused")
    now = 1.0
    for _ in range(2):
        e.handle(ReconnectDone(down), now, None)
        now = e.wake_at() or now
        e.handle(TimePassed(), now, None)
    out = e.handle(ReconnectDone(down), now, None)
    error = end_of(out).error
    assert error is not None and "gave up reconnecting after 3" in str(error)


def test_no_market_data_for_stall_timeout_breaks_the_connection() -> None:
    e, request = live_engine(ny(9, 31, 10))
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    assert e.wake_at() == pytest.approx(0.0 + 30.0)  # the last market data: the start
    out = e.handle(TimePassed(), 30.2, None)
    assert statuses(out) == [FeedStatus.CONNBROKEN]
    assert out[-1] == Reconnect()


def test_not_subscribed_market_data_ends_the_feed_as_notsubscribed() -> None:
    e, request = live_engine(ny(9, 31, 10))
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    out = e.handle(MarketData(snap(ny(9, 31, 20), 100.0, 5000, availability="N")), 0.2, None)
    assert statuses(out) == [FeedStatus.NOTSUBSCRIBED]
    assert isinstance(end_of(out).error, DataUnavailable)
    assert Subscribe(False) in out


def test_todate_ends_a_live_feed() -> None:
    e, request = live_engine(ny(9, 31, 10), end=ny(9, 32))
    out = e.handle(HistoryAnswer(request, (bar(30), bar(31))), 0.1, ny(9, 32, 1))
    assert statuses(out)[-1] is FeedStatus.DISCONNECTED
    assert end_of(out).error is None


def test_unconfirmed_bars_are_delivered_without_history_when_confirm_is_off() -> None:
    e, request = live_engine(ny(9, 31, 10), confirm=False)
    e.handle(MarketData(snap(ny(9, 30, 50), 99.0, 4800)), 0.05, None)  # watched from 09:31
    e.handle(HistoryAnswer(request, (bar(30),)), 0.1, None)
    e.handle(MarketData(snap(ny(9, 31, 20), 100.0, 5000)), 0.2, None)
    e.handle(MarketData(snap(ny(9, 31, 40), 101.0, 5200)), 0.3, None)
    out = e.handle(MarketData(snap(ny(9, 32, 0.2), 101.0, 5300)), 0.4, None)
    assert fetches(out) == []
    assert bars_of(out) == [Bar(ny(9, 31), 100.0, 101.0, 100.0, 101.0, 400.0)]
