"""Under heavy load from many threads the client never provokes a 429."""

from __future__ import annotations

import threading
import time

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.pacing import Pacer, PacingLimits
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.session import SessionKeeper
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.simulator import GatewaySimulator


def test_eight_threads_hammering_never_hit_a_429(sim: GatewaySimulator) -> None:
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

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
        with keeper:
            started = time.monotonic()
            for thread in threads:
                thread.start()
            time.sleep(2.5)
            stop.set()
            for thread in threads:
                thread.join(10)
            elapsed = time.monotonic() - started
    assert not errors
    assert sim.stats.rate_limited == 0
    assert sim.stats.max_concurrent_history <= 4
    total = sum(sim.stats.requests.values())
    # pacing holds back, it does not starve: at most 10 per (1.1 s + answer time)
    assert total >= 5 * elapsed
    assert total <= 10 * (elapsed / 1.1 + 1)
    assert sim.stats.requests["/tickle"] >= 2
    assert sim.stats.requests["/iserver/accounts"] == 1  # once, however many threads ask
    assert pacer.sent["history"] > 4 and pacer.sent["snapshot"] > 4


def test_five_concurrent_history_requests_are_allowed_when_asked(sim: GatewaySimulator) -> None:
    sim.latency = 0.3
    with Transport(sim.url, pacer=Pacer(PacingLimits(history_concurrency=5))) as transport:
        api = ApiClient(transport)
        threads = [
            threading.Thread(target=api.history, args=(sim.conid("AAPL"), "5min", "1h"))
            for _ in range(7)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert sim.stats.max_concurrent_history == 5
    assert sim.stats.rate_limited == 0
