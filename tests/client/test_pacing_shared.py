"""The shared pacing ledger, driven by a fake clock: two pacers with their own ledger objects
on one folder stand for two processes (no real waiting, no sleeps)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from backtrader_ibkr_cp.cassettes.wiring import replay_pacing_limits
from backtrader_ibkr_cp.client.pacing import Pacer, PacingCancelled, PacingLimits
from backtrader_ibkr_cp.client.pacing_ledger import (
    IN_FLIGHT_EXPIRY,
    PENALTY_CAP,
    Entry,
    PacingLedger,
)
from backtrader_ibkr_cp.client.pacing_store import (
    ENV_PACING_DIR,
    FileStore,
    MemoryStore,
    gateway_key,
    open_store,
    pacing_dir,
    pid_alive,
)
from backtrader_ibkr_cp.errors import RateLimitExceeded
from backtrader_ibkr_cp.timing import CancelToken, FakeClock

HISTORY = "/iserver/marketdata/history"
SNAPSHOT = "/iserver/marketdata/snapshot"
OTHER = "/iserver/accounts"
KEY = "localhost-5000"
#: A pid standing for another process (its liveness is what the test says it is).
OTHER_PID = 4_000_001


def ledger(folder: Path, *, pid: int | None = None, alive: set[int] | None = None) -> PacingLedger:
    """A ledger object on the shared file in ``folder``, as one process would open it."""
    living = alive if alive is not None else {OTHER_PID}

    def is_alive(p: int) -> bool:
        return p in living or p == os.getpid()

    return PacingLedger(FileStore(folder, KEY), pid=pid, alive=is_alive)


def pacer(
    clock: FakeClock, book: PacingLedger, limits: PacingLimits | None = None, **kwargs: object
) -> Pacer:
    options: dict[str, object] = {"random": lambda: 0.0, "name": KEY, **kwargs}
    return Pacer(limits, clock=clock, ledger=book, **options)  # type: ignore[arg-type]


def send(p: Pacer, clock: FakeClock, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        with p.slot(path):
            times.append(clock.now())
    return times


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0, autojump=True)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "pacing"


# -- one budget across processes ---------------------------------------------------------------


def test_two_processes_share_the_sliding_windows(clock: FakeClock, folder: Path) -> None:
    a = pacer(clock, ledger(folder))
    b = pacer(clock, ledger(folder, pid=OTHER_PID))
    assert send(a, clock, OTHER, 6) == [1000.0] * 6
    assert send(b, clock, SNAPSHOT, 4) == [1000.0] * 4
    # ten requests in the window, whoever sent them: the next waits a window
    assert a.wait_time(OTHER) == pytest.approx(1.1)
    assert b.wait_time(SNAPSHOT) == pytest.approx(1.1)
    assert send(b, clock, OTHER, 1) == [pytest.approx(1001.1)]
    assert a.sent == {"other": 6} and b.sent == {"snapshot": 4, "other": 1}


def test_two_processes_share_the_history_slots(clock: FakeClock, folder: Path) -> None:
    a = pacer(clock, ledger(folder))
    b_ledger = ledger(folder, pid=OTHER_PID)
    b = pacer(clock, b_ledger)
    with ExitStack() as stack:
        for _ in range(4):
            stack.enter_context(a.slot(HISTORY))
        assert b.in_flight("history") == 4
        assert b.wait_time(HISTORY) == math.inf
        verdict = b_ledger.admit("history", PacingLimits().windows("history"), 4, clock.now())
        assert verdict.ticket is None and verdict.foreign  # only another process can free it
        assert b.wait_time(SNAPSHOT) == 0.0
    assert b.wait_time(HISTORY) == 0.0


def test_the_stricter_concurrency_of_two_processes_holds_for_the_stricter_one(
    clock: FakeClock, folder: Path
) -> None:
    loose = pacer(clock, ledger(folder), PacingLimits(history_concurrency=5))
    strict = pacer(clock, ledger(folder, pid=OTHER_PID), PacingLimits(history_concurrency=2))
    with loose.slot(HISTORY), loose.slot(HISTORY):
        assert strict.wait_time(HISTORY) == math.inf  # each applies its own limit to all
        assert loose.wait_time(HISTORY) == 0.0


def test_a_penalty_holds_every_process_back(clock: FakeClock, folder: Path) -> None:
    a = pacer(clock, ledger(folder, pid=OTHER_PID))
    b = pacer(clock, ledger(folder))
    a.penalize(30.0)
    assert b.penalty_remaining == pytest.approx(30.0)
    assert b.throttled_since == 1000.0
    assert b.wait_time(OTHER) == pytest.approx(30.0)
    assert send(b, clock, OTHER, 1) == [pytest.approx(1030.0)]
    assert b.penalty_remaining == 0.0 and b.throttled_since is None


def test_a_caller_that_does_not_wait_out_a_penalty_fails_at_once(
    clock: FakeClock, folder: Path
) -> None:
    a = pacer(clock, ledger(folder, pid=OTHER_PID))
    b = pacer(clock, ledger(folder))
    a.penalize(599.2)
    with pytest.raises(RateLimitExceeded) as caught, b.slot(OTHER, wait_out_penalty=False):
        pass
    error = caught.value
    assert error.retry_after == 600.0 and error.context["sent"] is False
    assert f"process {OTHER_PID}" in str(error) and "600 s" in str(error)
    assert clock.now() == 1000.0 and b.sent == {}  # no wait, nothing sent


def test_queued_callers_fail_at_once_on_a_penalty_when_they_do_not_wait_it_out(
    folder: Path,
) -> None:
    """A command line's history windows queued behind a slot: the first 429 fails them all."""
    clock = FakeClock(1000.0)  # moved by nobody: only the penalty can end the wait
    p = pacer(clock, ledger(folder), PacingLimits(history_concurrency=1))
    errors: list[BaseException] = []

    def queued() -> None:
        try:
            with p.slot(HISTORY, wait_out_penalty=False):
                pass
        except BaseException as exc:
            errors.append(exc)

    with p.slot(HISTORY):
        thread = threading.Thread(target=queued)
        thread.start()
        clock.wait_for_sleepers(1)
        assert p.waiting == 1
        p.penalize(600.0)  # the request in flight got a 429
        thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], RateLimitExceeded)
    assert errors[0].retry_after == 600.0
    assert p.sent == {"history": 1}


def test_callers_resume_after_a_penalty_with_jitter(folder: Path) -> None:
    clock = FakeClock(1000.0, autojump=True)
    draws = iter([0.25, 0.75])
    p = pacer(clock, ledger(folder), penalty_jitter=2.0, random=lambda: next(draws))
    p.penalize(10.0)
    assert send(p, clock, "/tickle", 1) == [pytest.approx(1010.5)]
    p.penalize(10.0)
    assert send(p, clock, "/tickle", 1) == [pytest.approx(1022.0)]


def test_a_cancel_token_ends_a_wait_at_once(folder: Path) -> None:
    clock = FakeClock(1000.0)
    p = pacer(clock, ledger(folder))
    p.penalize(600.0)
    token = CancelToken()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            with p.slot(OTHER, cancel=token):
                pass
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    clock.wait_for_sleepers(1)
    token.cancel("closing")
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], PacingCancelled)
    assert clock.now() == 1000.0 and p.sent == {}


def test_an_event_cancel_is_seen_when_the_pacer_is_interrupted(folder: Path) -> None:
    clock = FakeClock(1000.0)
    p = pacer(clock, ledger(folder))
    p.penalize(600.0)
    closed = threading.Event()
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            with p.slot(OTHER, cancel=closed):
                pass
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    clock.wait_for_sleepers(1)
    closed.set()
    p.interrupt()
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], PacingCancelled)


# -- processes that die, clocks that jump ----------------------------------------------------


def test_a_request_whose_answer_timed_out_keeps_its_places_while_it_lingers(
    clock: FakeClock, folder: Path
) -> None:
    """A request kept for 2 s after it timed out (the gateway may still be working on it)
    holds its history slot for every process until then, and its place in the rate windows
    a window after that; a process of the earlier row format (no linger) is read as 0."""
    a = pacer(clock, ledger(folder), PacingLimits(history_concurrency=1))
    b = pacer(clock, ledger(folder, pid=OTHER_PID), PacingLimits(history_concurrency=1))
    with a.slot(HISTORY) as hold:
        hold.keep(2.0)
    assert a.in_flight("history") == 0  # answered (by its timeout)
    assert b.wait_time(HISTORY) == pytest.approx(2.0)  # a finite wait, no poll for a release
    assert send(b, clock, HISTORY, 1) == [pytest.approx(1002.0)]
    (first, second) = b.state().entries
    assert (first.done, first.linger, first.finished) == (1000.0, 2.0, 1002.0)
    assert second.linger == 0.0
    # its place in a rate window (tickle: 1 per 1.1 s) ends a window after it finished
    with a.slot("/tickle") as hold:
        hold.keep(2.0)
    assert b.wait_time("/tickle") == pytest.approx(3.1)
    earlier = Entry.from_json(first.to_json()[:6])  # a row without linger
    assert earlier is not None and earlier.linger == 0.0 and earlier.finished == 1000.0


def test_a_dead_process_releases_its_history_slots(clock: FakeClock, folder: Path) -> None:
    alive = {OTHER_PID}
    dead_to_be = ledger(folder, pid=OTHER_PID, alive=alive)
    survivor = ledger(folder, alive=alive)
    windows = PacingLimits().windows("history")
    for _ in range(4):
        assert dead_to_be.admit("history", windows, 4, clock.now()).ticket is not None
    assert survivor.state(clock.now()).in_flight_pids("history") == {OTHER_PID: 4}
    assert survivor.admit("history", windows, 4, clock.now()).ticket is None

    alive.discard(OTHER_PID)  # killed: it never releases
    state = survivor.state(clock.now())
    assert state.in_flight("history") == 0
    assert [e.done for e in state.entries] == [clock.now()] * 4  # still in the rate windows
    assert survivor.admit("history", windows, 4, clock.now()).ticket is not None


def test_an_in_flight_entry_expires_after_a_bounded_age(clock: FakeClock, folder: Path) -> None:
    hung = ledger(folder, pid=OTHER_PID)  # alive, but never answers
    other = pacer(clock, ledger(folder), PacingLimits(history_concurrency=1))
    windows = PacingLimits().windows("history")
    assert hung.admit("history", windows, 1, clock.now()).ticket is not None
    assert other.wait_time(HISTORY) == math.inf
    assert send(other, clock, HISTORY, 1) == [pytest.approx(1000.0 + IN_FLIGHT_EXPIRY)]


def test_times_from_a_clock_that_went_back_never_hold_longer_than_a_window(
    folder: Path,
) -> None:
    before = FakeClock(5000.0, autojump=True)
    a = pacer(before, ledger(folder, pid=OTHER_PID))
    send(a, before, "/tickle", 1)
    a.penalize(PENALTY_CAP * 10)
    after = FakeClock(1000.0, autojump=True)  # the wall clock jumped back 4000 s
    b = pacer(after, ledger(folder))
    state = b.state()
    assert state.penalty_remaining == pytest.approx(PENALTY_CAP)
    assert all(e.done is not None and e.done <= 1000.0 for e in state.entries)
    assert b.wait_time(OTHER) <= PENALTY_CAP


def test_pid_alive_knows_this_process_and_a_reaped_child() -> None:
    import subprocess
    import sys

    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    assert not pid_alive(0) and not pid_alive(-5)


# -- the store ---------------------------------------------------------------------------------


def test_a_corrupt_ledger_file_starts_afresh(
    clock: FakeClock, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    book = ledger(folder)
    book.penalize(clock.now() + 60.0, clock.now())
    (folder / f"{KEY}.json").write_text("{not json")
    assert book.state(clock.now()).penalty_until is None
    assert "not valid JSON" in caplog.text
    assert json.loads((folder / f"{KEY}.json").read_text())["v"] == 1


def test_the_ledger_file_holds_only_what_is_needed(clock: FakeClock, folder: Path) -> None:
    p = pacer(clock, ledger(folder))
    send(p, clock, OTHER, 30)
    clock.advance(2.0)
    assert p.state().entries == ()  # answered more than a window ago: forgotten


def test_pacing_dir_comes_from_the_environment_only_when_asked() -> None:
    assert pacing_dir({ENV_PACING_DIR: "/tmp/x"}) == Path("/tmp/x")
    assert pacing_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/backtrader_ibkr_cp/pacing")
    assert pacing_dir({}) == Path.home() / ".cache" / "backtrader_ibkr_cp" / "pacing"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://localhost:5000", "localhost-5000"),
        ("https://127.0.0.1:5000/v1/api", "localhost-5000"),
        ("http://[::1]:5000", "localhost-5000"),
        ("localhost:5000", "localhost-5000"),
        ("https://Gateway.Example.com/v1/api", "gateway.example.com-443"),
        ("https://10.0.0.5:5001", "10.0.0.5-5001"),
    ],
)
def test_gateway_key_is_host_and_port(url: str, key: str) -> None:
    assert gateway_key(url) == key


def test_an_unusable_folder_falls_back_to_per_process_pacing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = open_store("unusable-1", blocker / "pacing")
    assert isinstance(store, MemoryStore) and not store.shared
    assert open_store("unusable-1", blocker / "pacing") is store  # one per gateway


def test_a_folder_removed_under_a_running_pacer_does_not_fail_its_requests(
    clock: FakeClock, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    p = pacer(clock, ledger(folder))
    send(p, clock, OTHER, 1)
    shutil.rmtree(folder)
    assert send(p, clock, OTHER, 2) == [1000.0, 1000.0]  # paced in this process from now on
    assert "cannot open" in caplog.text


# -- one pacer per gateway per process -------------------------------------------------------


@pytest.fixture
def env_folder(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(ENV_PACING_DIR, str(folder))
    yield folder


def test_shared_is_keyed_by_gateway_not_by_limits(env_folder: Path) -> None:
    """A regression: ``Pacer.shared`` was keyed by URL and limits, so two clients of one
    gateway with different history concurrency got two pacers (5 + 4 in flight)."""
    five = Pacer.shared("https://127.0.0.1:5999/v1/api", PacingLimits(history_concurrency=5))
    two = Pacer.shared("https://localhost:5999", PacingLimits(history_concurrency=2))
    assert five is two
    assert five.limits.history_concurrency == 2  # the stricter of each limit
    assert five.shared_ledger and five.name == "localhost-5999"
    with five.slot(HISTORY):
        assert (env_folder / "localhost-5999.json").exists()  # in $IBKR_CP_PACING_DIR


def test_shared_keeps_the_stricter_of_each_limit(env_folder: Path) -> None:
    url = "https://localhost:5998"
    first = Pacer.shared(url, PacingLimits(history_concurrency=5, total_per_second=8.0))
    Pacer.shared(url, PacingLimits(snapshot_per_second=4.0, margin=0.3))
    Pacer.shared(url, PacingLimits.conservative())
    Pacer.shared(url)  # no limits: nothing changes
    assert first.limits == PacingLimits(
        total_per_second=1.0,
        snapshot_per_second=4.0,
        history_concurrency=4,
        margin=0.3,
    )


def test_a_replay_gets_a_private_pacer(env_folder: Path) -> None:
    url = "https://localhost:5997"
    replay = Pacer.for_gateway(url, replay_pacing_limits())
    real = Pacer.for_gateway(url)
    assert replay is not real and not replay.shared_ledger and real.shared_ledger
    assert real.limits == PacingLimits()  # the replay's limits did not loosen it
    assert Pacer.for_gateway(url, shared=False) is not real
    assert Pacer.for_gateway(url, replay_pacing_limits(), shared=True) is real


class LockWait:
    """A store whose next transaction first runs ``meanwhile``: what other threads did while
    the caller waited for the lock (a busy machine makes that wait long)."""

    shared = False

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.meanwhile: Callable[[], None] | None = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        with self.inner.transaction() as state:
            yield state


def test_a_wait_for_the_ledger_lock_never_shortens_another_requests_window() -> None:
    """A caller that read the time and then waited for the ledger's lock judged with that
    stale time, and the ledger's clamp of "future" times moved the answer time of a request
    another thread finished meanwhile back to it: that request's place in the windows ended
    early by the wait (the soak's simulator then counted 11 requests in one second). Times
    are now read once the lock is held."""
    clock = FakeClock(1000.0)
    store = LockWait()
    book = PacingLedger(store)
    p = pacer(clock, book)
    ticket = book.admit("history", p.limits.windows("history"), 4, clock.now()).ticket
    assert ticket is not None

    def another_thread_finishes() -> None:
        clock.advance(0.3)
        book.release(ticket, clock.now())

    store.meanwhile = another_thread_finishes
    p.wait_time(HISTORY)  # reads the time, then waits for the lock
    (entry,) = book.state(clock.now()).entries
    assert entry.done == pytest.approx(1000.3)
