"""The timing model: clocks, signals, cancel tokens, back-off, and the bounded channel."""

from __future__ import annotations

import math
import threading

import pytest

from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.live.channel import Channel
from backtrader_ibkr_cp.timing import (
    SYSTEM_CLOCK,
    Backoff,
    Cancelled,
    CancelToken,
    FakeClock,
    Signal,
)


def test_a_wait_ends_when_its_signal_is_set_from_another_thread() -> None:
    signal = Signal()
    threading.Timer(0.01, signal.set).start()
    assert SYSTEM_CLOCK.wait(math.inf, signal) is True


def test_a_set_signal_ends_a_wait_at_once_and_none_entries_are_ignored() -> None:
    signal = Signal()
    signal.set()
    assert SYSTEM_CLOCK.wait(math.inf, None, signal) is True
    assert SYSTEM_CLOCK.wait(0.0, None) is False


def test_cancelling_a_token_cancels_its_children_and_runs_callbacks_once() -> None:
    parent = CancelToken()
    child = parent.child()
    calls: list[str] = []
    child.on_cancel(lambda: calls.append("child"))
    parent.cancel("closing")
    parent.cancel("again")
    assert child.cancelled and child.reason == "closing"
    assert calls == ["child"]
    with pytest.raises(Cancelled, match="closing"):
        child.raise_if_cancelled()
    late: list[str] = []
    child.on_cancel(lambda: late.append("late"))
    assert late == ["late"]  # registered after the cancellation: runs at once
    with pytest.raises(TypeError):
        child.clear()


def test_a_fake_clock_wait_ends_when_time_is_advanced_past_it() -> None:
    clock = FakeClock(start=10.0)
    ended = threading.Event()

    def sleeper() -> None:
        clock.wait(5.0)
        ended.set()

    thread = threading.Thread(target=sleeper)
    thread.start()
    clock.wait_for_sleepers(1)
    clock.advance(4.9)
    assert clock.sleepers() == 1 and not ended.is_set()
    clock.advance(0.1)
    thread.join(5)
    assert ended.is_set() and clock.now() == 15.0 and clock.waits == [5.0]


def test_a_fake_clock_wait_ends_on_cancellation_without_time_passing() -> None:
    clock = FakeClock()
    token = CancelToken()
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(clock.wait(60.0, token)))
    thread.start()
    clock.wait_for_sleepers(1)
    token.cancel()
    thread.join(5)
    assert result == [True] and clock.now() == 1000.0


def test_autojump_runs_waits_instantly_and_records_them() -> None:
    clock = FakeClock(start=0.0, autojump=True)
    for seconds in (0.5, 1.0, 2.0):
        assert clock.wait(seconds) is False
    assert clock.now() == 3.5 and clock.waits == [0.5, 1.0, 2.0]


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter_and_counts_attempts() -> None:
    plain = Backoff(initial=0.5, factor=2.0, maximum=4.0, jitter=0.0, attempts=3)
    assert [plain.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert plain.allows(3) and not plain.allows(4)
    assert Backoff(attempts=-1).allows(10**6)
    jittered = Backoff(initial=1.0, maximum=100.0, jitter=0.5, random=lambda: 0.999)
    assert 1.0 < jittered.delay(1) < 1.5


@pytest.mark.parametrize(
    "kwargs", [{"initial": -1}, {"factor": 0.5}, {"attempts": -2}, {"attempts": 1.5}]
)
def test_backoff_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="Backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_a_full_channel_makes_put_wait_for_room_and_offer_drop_the_oldest() -> None:
    channel: Channel[int] = Channel(2)
    channel.put(1)
    channel.put(2)
    token = CancelToken()
    done = threading.Event()

    def producer() -> None:
        channel.put(3, token)
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not done.wait(0.05)  # no room yet
    assert channel.get() == 1
    thread.join(5)
    assert done.is_set() and channel.drain() == [2, 3]
    channel.offer(4)
    channel.offer(5)
    channel.offer(6)
    assert channel.drain() == [5, 6] and channel.dropped == 1


def test_a_put_waiting_for_room_ends_on_cancellation() -> None:
    channel: Channel[int] = Channel(1)
    channel.put(1)
    token = CancelToken()
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            channel.put(2, token)
        except Cancelled as exc:
            errors.append(exc)

    thread = threading.Thread(target=producer)
    thread.start()
    token.cancel("the stream stopped")
    thread.join(5)
    assert errors and "the stream stopped" in str(errors[0])


def test_get_waits_on_the_clock_and_returns_none_when_nothing_came() -> None:
    clock = FakeClock(autojump=True)
    channel: Channel[int] = Channel(3, clock=clock)
    assert channel.get(0.5) is None
    assert clock.waits == [0.5]
