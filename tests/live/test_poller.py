"""SnapshotPoller against the simulator over HTTPS: one request per cycle, errors survived."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from backtrader_ibkr_cp.client import ApiClient
from backtrader_ibkr_cp.client.transport import ClientEvent
from backtrader_ibkr_cp.errors import ConfigError, MarketError
from backtrader_ibkr_cp.live.poller import MIN_INTERVAL, SnapshotPoller
from backtrader_ibkr_cp.models import Snapshot
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.timing import FakeClock

SYMBOLS = ("AAPL", "IBM", "MSFT", "AMZN", "GOOGL", "META", "TSLA", "NVDA", "SPY", "QQQ")
#: Real seconds a test waits for something the poller thread does before it fails.
SETTLE = 10.0


class Recorder:
    """A listener that records what it gets; :meth:`wait_until` waits for it (woken by each
    snapshot or error, not by polling)."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.errors: list[MarketError] = []
        self.got_data = threading.Event()
        self._changed = threading.Condition()

    def on_snapshot(self, snapshot: Snapshot) -> None:
        with self._changed:
            self.snapshots.append(snapshot)
            self._changed.notify_all()
        if not snapshot.is_preflight:
            self.got_data.set()

    def on_error(self, error: MarketError) -> None:
        with self._changed:
            self.errors.append(error)
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[Recorder], object], what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self), SETTLE):
                raise AssertionError(f"no {what} within {SETTLE} s")


def request_seen(api: ApiClient, path: str) -> threading.Event:
    """An event set when ``api`` has had an answer (or a failure) for a request to ``path``."""
    seen = threading.Event()

    def listener(event: ClientEvent) -> None:
        if event.kind == "request" and event.details.get("path") == path:
            seen.set()

    api.transport.add_listener(listener)
    return seen


def test_one_request_per_cycle_carries_every_conid_and_each_listener_gets_its_own(
    no_thread_leak: None, sim: GatewaySimulator, api: ApiClient
) -> None:
    poller = SnapshotPoller(api, interval=0.1)
    recorders = {sim.conid(s): Recorder() for s in SYMBOLS}
    for conid, recorder in recorders.items():
        poller.subscribe(conid, recorder)
    try:
        for recorder in recorders.values():
            assert recorder.got_data.wait(5.0)
        cycles = poller.cycles
    finally:
        poller.stop()
    assert not poller.running
    requests = sim.stats.snapshot_conids
    assert len(requests) >= cycles >= 2
    assert all(sorted(r) == sorted(recorders) for r in requests[1:])  # all 10 in each
    for conid, recorder in recorders.items():
        assert {s.conid for s in recorder.snapshots} == {conid}
        assert recorder.snapshots[0].is_preflight  # first answer: pre-flight, dispatched
        data = [s for s in recorder.snapshots if not s.is_preflight]
        assert data[0].last is not None and data[0].timestamp is not None


def test_cadence_stays_inside_half_the_snapshot_budget(
    no_thread_leak: None, sim: GatewaySimulator, api: ApiClient
) -> None:
    """One cycle per MIN_INTERVAL at most, whatever interval is asked: counted on a fake
    clock that moves only when the poller waits."""
    clock = FakeClock()
    poller = SnapshotPoller(api, interval=0.01, clock=clock)
    assert poller.interval == MIN_INTERVAL
    poller.subscribe(sim.conid("AAPL"), Recorder())
    try:
        for cycle in range(1, 6):
            clock.wait_for_sleepers(1)  # the poller finished a cycle and waits for the next
            assert len(sim.stats.snapshot_conids) == cycle
            clock.advance(MIN_INTERVAL)
    finally:
        poller.stop()
    assert clock.waits[:5] == pytest.approx([MIN_INTERVAL] * 5)
    assert sim.stats.rate_limited == 0


def test_a_subscription_right_after_stop_restarts_the_poller(
    no_thread_leak: None, sim: GatewaySimulator, api: ApiClient
) -> None:
    """Bug: ``subscribe()`` right after ``stop(timeout=0)`` found the old thread still alive
    and returned; that thread then ended: ``conids`` listed the conid, nothing polled it."""
    first, second = Recorder(), Recorder()
    poller = SnapshotPoller(api, interval=0.05)
    poller.subscribe(sim.conid("AAPL"), first)
    assert first.got_data.wait(5.0)
    poller.stop(timeout=0)
    poller.subscribe(sim.conid("IBM"), second)
    try:
        assert second.got_data.wait(5.0)
        assert poller.running
    finally:
        poller.stop()


def test_errors_reach_listeners_and_the_poller_recovers(
    no_thread_leak: None, sim: GatewaySimulator, api: ApiClient
) -> None:
    recorder = Recorder()
    poller = SnapshotPoller(api, interval=0.05, max_backoff=0.2)
    poller.subscribe(sim.conid("AAPL"), recorder)
    try:
        assert recorder.got_data.wait(5.0)
        # More 503s than the client's own retries: the poller sees the error, backs off.
        sim.inject("http_503", count=6, path="/iserver/marketdata/snapshot")
        recorder.wait_until(lambda r: r.errors, "error")
        seen = len(recorder.snapshots)
        recorder.wait_until(lambda r: len(r.snapshots) > seen + 2, "snapshots after it")
    finally:
        poller.stop()
    assert isinstance(recorder.errors[0], MarketError)


def test_unsubscribe_closes_the_gateway_stream_and_stop_is_clean(
    no_thread_leak: None, sim: GatewaySimulator, api: ApiClient
) -> None:
    recorder = Recorder()
    poller = SnapshotPoller(api, interval=0.05)
    conid = sim.conid("IBM")
    poller.subscribe(conid, recorder)
    assert recorder.got_data.wait(5.0)
    unsubscribed = request_seen(api, "/iserver/marketdata/unsubscribe")
    poller.unsubscribe(conid, recorder)
    assert unsubscribed.wait(SETTLE)
    assert sim.stats.requests["/iserver/marketdata/unsubscribe"] == 1
    assert poller.conids == []
    poller.stop()
    poller.stop()  # idempotent


def test_a_listener_that_raises_does_not_kill_the_poller(
    sim: GatewaySimulator, api: ApiClient
) -> None:
    class Broken(Recorder):
        def on_snapshot(self, snapshot: Snapshot) -> None:
            super().on_snapshot(snapshot)
            raise RuntimeError("listener bug")

    broken, good = Broken(), Recorder()
    poller = SnapshotPoller(api, interval=0.05)
    poller.subscribe(sim.conid("AAPL"), broken)
    poller.subscribe(sim.conid("AAPL"), good)
    try:
        good.wait_until(lambda r: len(r.snapshots) >= 3, "three snapshots")
    finally:
        poller.stop()


@pytest.mark.parametrize("interval", [0, -1, float("nan")])
def test_bad_interval_is_a_config_error(api: ApiClient, interval: float) -> None:
    with pytest.raises(ConfigError, match="poll interval"):
        SnapshotPoller(api, interval=interval)
