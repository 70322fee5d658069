"""Pacer window logic with a fake clock (no real sleeping), plus one real-thread test."""

from __future__ import annotations

import math
import threading
from contextlib import ExitStack

import pytest

from backtrader_ibkr_cp.client.pacing import (
    IBKR_HISTORY_CONCURRENCY,
    Pacer,
    PacingLimits,
    request_kind,
)
from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.timing import FakeClock

SNAPSHOT = "/iserver/marketdata/snapshot"
HISTORY = "/iserver/marketdata/history"
#: Real seconds a test waits for a thread it started before it fails.
JOIN_TIMEOUT = 10.0


def make(limits: PacingLimits | None = None) -> tuple[Pacer, FakeClock]:
    """A private pacer on a fake clock that jumps to the end of every wait (no jitter)."""
    clock = FakeClock(0.0, autojump=True)
    return Pacer(limits or PacingLimits(), clock=clock, random=lambda: 0.0), clock


def send(pacer: Pacer, clock: FakeClock, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        with pacer.slot(path):
            times.append(clock.now())
    return times


def max_in_server_window(times: list[float], window: float = 1.0) -> int:
    """The most sends the server would count in any (t - window, t] interval."""
    return max(sum(1 for s in times if t - window < s <= t) for t in times)


def test_request_kind_classifies_paths() -> None:
    assert request_kind(HISTORY) == "history"
    assert request_kind("/v1/api/iserver/marketdata/history?conid=1") == "history"
    assert request_kind(SNAPSHOT) == "snapshot"
    assert request_kind("/tickle") == "tickle"
    assert request_kind("/sso/validate") == "sso_validate"
    assert request_kind("/iserver/accounts") == "other"


def test_ten_per_second_then_waits_a_window_slightly_longer_than_the_servers() -> None:
    pacer, clock = make()
    times = send(pacer, clock, SNAPSHOT, 10)
    assert times == [0.0] * 10
    assert pacer.wait_time(SNAPSHOT) == pytest.approx(1.1)
    times += send(pacer, clock, SNAPSHOT, 1)
    assert times[-1] == pytest.approx(1.1)


def test_sustained_load_never_exceeds_ten_in_any_server_window() -> None:
    pacer, clock = make()
    times = []
    for i in range(60):
        path = SNAPSHOT if i % 2 else "/iserver/secdef/search"
        times += send(pacer, clock, path, 1)
    assert max_in_server_window(times) == 10
    assert times[-1] >= 5 * 1.1  # 60 requests need 5 full extra windows
    assert pacer.sent == {"snapshot": 30, "other": 30}


def test_a_request_holds_its_place_until_a_window_after_its_answer() -> None:
    """The server counts arrival, which can be as late as the answer: a slow request keeps
    its place in the window until a full window after it was answered."""
    pacer, clock = make(PacingLimits(total_per_second=1.0))
    with pacer.slot("/iserver/accounts"):
        clock.advance(2.0)  # answered two seconds later
        assert pacer.wait_time("/iserver/accounts") == math.inf  # in flight: no place free
    assert pacer.wait_time("/iserver/accounts") == pytest.approx(1.1)
    clock.advance(1.1)
    assert pacer.wait_time("/iserver/accounts") == 0.0


def test_total_limit_covers_every_kind_together() -> None:
    pacer, clock = make()
    send(pacer, clock, SNAPSHOT, 5)
    send(pacer, clock, HISTORY, 5)
    assert pacer.wait_time("/iserver/accounts") == pytest.approx(1.1)


def test_tickle_is_one_per_second() -> None:
    pacer, clock = make()
    times = send(pacer, clock, "/tickle", 3)
    assert times == pytest.approx([0.0, 1.1, 2.2])
    assert pacer.wait_time("/iserver/accounts") == 0.0  # other requests are not held


def test_sso_validate_is_one_per_minute() -> None:
    pacer, clock = make()
    send(pacer, clock, "/sso/validate", 1)
    assert pacer.wait_time("/sso/validate") == pytest.approx(60.1)


def test_conservative_preset_is_sixty_per_minute() -> None:
    limits = PacingLimits.conservative()
    assert limits.total_per_second == 1.0
    pacer, clock = make(limits)
    times = send(pacer, clock, "/iserver/accounts", 61)
    assert max(sum(1 for s in times if t - 60.0 < s <= t) for t in times) <= 60
    assert times[1] == pytest.approx(1.1)


def test_fractional_rate() -> None:
    pacer, clock = make(PacingLimits(total_per_second=0.5))
    times = send(pacer, clock, "/iserver/accounts", 3)
    assert times == pytest.approx([0.0, 2.1, 4.2])


def test_history_concurrency_blocks_until_a_request_finishes() -> None:
    pacer, _clock = make()
    with ExitStack() as stack:
        for _ in range(4):
            stack.enter_context(pacer.slot(HISTORY))
        assert pacer.in_flight("history") == 4
        assert pacer.wait_time(HISTORY) == math.inf
        assert pacer.wait_time(SNAPSHOT) == 0.0  # concurrency only holds history back
    assert pacer.in_flight("history") == 0
    assert pacer.wait_time(HISTORY) == 0.0


def test_penalize_holds_everyone_and_is_observable() -> None:
    pacer, clock = make()
    assert pacer.throttled_since is None
    clock.advance(10.0)
    pacer.penalize(5.0)
    assert pacer.throttled_since == 10.0
    assert pacer.penalty_remaining == pytest.approx(5.0)
    assert pacer.wait_time("/tickle") == pytest.approx(5.0)
    times = send(pacer, clock, "/iserver/accounts", 1)
    assert times == [15.0]
    pacer.penalize(1.0)  # a shorter penalty never shortens a longer one
    clock.advance(0.5)
    pacer.penalize(0.1)
    assert pacer.penalty_remaining == pytest.approx(0.5)
    clock.advance(4.5)
    assert pacer.throttled_since is None
    assert pacer.penalty_remaining == 0.0


def test_waiting_callers_are_observable_with_real_threads(fake_clock: FakeClock) -> None:
    """A second caller blocks in a real thread while the first holds the only history slot,
    and goes the moment that slot is released: the clock never moves, so nothing but the
    release can have let it through."""
    pacer = Pacer(PacingLimits(history_concurrency=1), clock=fake_clock)
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with pacer.slot(HISTORY):
            entered.set()
            release.wait(JOIN_TIMEOUT)
            order.append("first released")

    def second() -> None:
        with pacer.slot(HISTORY):
            order.append("second sent")

    t1 = threading.Thread(target=first)
    t1.start()
    assert entered.wait(JOIN_TIMEOUT)
    t2 = threading.Thread(target=second)
    t2.start()
    fake_clock.wait_for_sleepers(1)  # the second caller waits for the slot
    assert pacer.waiting == 1
    assert pacer.throttled_since is not None
    assert order == []
    release.set()
    t1.join(JOIN_TIMEOUT)
    t2.join(JOIN_TIMEOUT)
    assert order == ["first released", "second sent"]
    assert fake_clock.now() == 1000.0  # woken by the release, not by time
    assert pacer.waiting == 0
    assert pacer.throttled_since is None
    assert pacer.sent == {"history": 2}


@pytest.mark.parametrize("value", [0, 6, -1, 4.5, True, "4"])
def test_history_concurrency_must_be_one_to_five(value: object) -> None:
    with pytest.raises(ConfigError, match="1, 2, 3, 4 or 5"):
        PacingLimits(history_concurrency=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["total_per_second", "snapshot_per_second", "tickle_per_second"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "10"])
def test_rates_must_be_positive_numbers(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        PacingLimits(**{field: value})  # type: ignore[arg-type]


def test_defaults_are_ibkrs_documented_limits() -> None:
    limits = PacingLimits()
    assert (limits.total_per_second, limits.snapshot_per_second) == (10.0, 10.0)
    assert limits.history_concurrency == 4 < IBKR_HISTORY_CONCURRENCY == 5
    assert (limits.tickle_per_second, limits.sso_validate_per_minute) == (1.0, 1.0)
    assert PacingLimits(history_concurrency=5).history_concurrency == 5
