"""Under heavy load from many threads the client never provokes a 429."""

from __future__ import annotations

import threading
import time

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.pacing import Pacer, PacingLimits
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.session import SessionKeeper
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.errors import MarketError, RequestTimeout
from backtrader_ibkr_cp.models.history import HistoryResponse
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.simulator.stats import SimStats

HISTORY = "/iserver/marketdata/history"
SNAPSHOT = "/iserver/marketdata/snapshot"
#: Real seconds a test waits for what it started before it fails (the pacing itself takes
#: a few seconds: IBKR allows ten requests per second).
SETTLE = 60.0


def hammered_enough(stats: SimStats) -> bool:
    """Both kinds of request got through repeatedly, and the keep-alive tickled twice."""
    requests = stats.requests
    return requests[HISTORY] > 4 and requests[SNAPSHOT] > 4 and requests["/tickle"] >= 2


def test_eight_threads_hammering_never_hit_a_429(sim: GatewaySimulator) -> None:
    """Eight threads send as fast as they can (unpaced, over a hundred requests a second)
    until the simulator has seen both kinds through several times and two tickles; the
    simulator counts every request on its 1-second windows and never answers 429. (How many
    requests a second the pacer lets through is measured in ``bench/``.)"""
    sim.latency = 0.05  # history requests overlap, so the concurrency cap matters
    pacer = Pacer(PacingLimits())
    conids = [sim.conid("AAPL"), sim.conid("IBM")]
    errors: list[BaseException] = []
    stop = threading.Event()
    # a 429 must fail the test at once, not wait out the penalty box
    retry = RetryPolicy(rate_limit_retries=0)
    with Transport(sim.url, pacer=pacer, retry=retry) as transport:
        api = ApiClient(transport)
        keeper = SessionKeeper(api, tickle_interval=0.1)  # asks for 10 tickles/s, gets 1/s

        def hammer(index: int) -> None:
            try:
                while not stop.is_set():
                    if index % 2:
                        api.snapshot(conids)
                    else:
                        api.history(conids[index % 4 // 2], "5min", "1h")
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
        with keeper:
            for thread in threads:
                thread.start()
            enough = sim.stats.wait_for(lambda s: hammered_enough(s) or bool(errors), SETTLE)
            stop.set()
            for thread in threads:
                thread.join(SETTLE)
    assert not errors
    assert enough and not any(thread.is_alive() for thread in threads)
    assert sim.stats.rate_limited == 0
    assert sim.stats.max_concurrent_history <= 4
    assert sim.stats.requests["/iserver/accounts"] == 1  # once, however many threads ask
    assert pacer.sent["history"] > 4 and pacer.sent["snapshot"] > 4


def test_five_concurrent_history_requests_are_allowed_when_asked(sim: GatewaySimulator) -> None:
    """Seven threads ask at once with a concurrency of five: the simulator holds the answers
    at a gate until five are in flight together, then lets them go."""
    with Transport(sim.url, pacer=Pacer(PacingLimits(history_concurrency=5))) as transport:
        api = ApiClient(transport)
        threads = [
            threading.Thread(target=api.history, args=(sim.conid("AAPL"), "5min", "1h"))
            for _ in range(7)
        ]
        with sim.gate(HISTORY) as gate:
            for thread in threads:
                thread.start()
            assert gate.wait_held(5, SETTLE)
        for thread in threads:
            thread.join(SETTLE)
    assert not any(thread.is_alive() for thread in threads)
    assert sim.stats.max_concurrent_history == 5
    assert sim.stats.requests[HISTORY] == 7
    assert sim.stats.rate_limited == 0


def test_history_answers_that_timed_out_keep_their_slots_while_the_gateway_works(
    sim: GatewaySimulator,
) -> None:
    """The gateway may still be working on a request whose answer timed out, and IBKR counts
    it among the five history requests in flight. Four history answers are held at a gate
    past the client's one-second read timeout; the client's next two history requests must
    wait for those slots (before: they went at once, the gateway counted six, answered 429
    and opened the penalty box), and go once the read timeout has passed again."""
    pacer = Pacer(PacingLimits())
    retry = RetryPolicy(total=0, rate_limit_retries=0)
    conid = sim.conid("AAPL")
    results: list[object] = []

    def ask() -> None:
        try:
            results.append(api.history(conid, "5min", "1h"))
        except MarketError as exc:
            results.append(exc)

    with Transport(sim.url, pacer=pacer, retry=retry, timeout=(5.0, 1.0)) as transport:
        api = ApiClient(transport)
        with sim.gate(HISTORY) as gate:
            first = [threading.Thread(target=ask) for _ in range(4)]
            for thread in first:
                thread.start()
            for thread in first:
                thread.join(SETTLE)
            assert [type(r) for r in results] == [RequestTimeout] * 4
            assert gate.held == 4  # the gateway still works on every one of them
            later = [threading.Thread(target=ask) for _ in range(2)]
            for thread in later:
                thread.start()
            deadline = time.monotonic() + SETTLE
            while not (pacer.waiting == 2 or sim.stats.rate_limited):
                assert time.monotonic() < deadline, "the two requests neither waited nor went"
                time.sleep(0.01)
            assert sim.stats.rate_limited == 0, sim.stats.violations
            assert sim.stats.requests[HISTORY] == 4
        # the gate opened: the gateway is done with the four; the two go when their slots free
        for thread in later:
            thread.join(SETTLE)
    assert not any(thread.is_alive() for thread in later)
    assert all(isinstance(r, HistoryResponse) and r.bars for r in results[4:]), results[4:]
    assert sim.stats.rate_limited == 0, sim.stats.violations
    assert sim.stats.requests[HISTORY] == 6
