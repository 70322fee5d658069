"""The broker worker's account snapshot against the simulator: the time it carries is when
IBKR computed the figures, so a fill already in IBKR's cash is never added to it again."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from backtrader_ibkr_cp.trading.worker import BrokerWorker, WorkerSettings
from tests.broker.trading import ACCOUNT, store_for, trading_sim
from tests.simulator.sim_trading import AAPL, Trader
from tests.support.instants import TUESDAY_MORNING


def test_a_fill_inside_the_account_read_is_before_the_snapshot_time() -> None:
    # The clock stands still 0.9 s into a second: every HTTP Date header says the whole
    # second, so the client's own clock estimate (a lower bound) is 0.9 s behind IBKR's.
    start = TUESDAY_MORNING.replace(microsecond=900_000)
    with trading_sim(speed=0, start=start) as sim:
        store = store_for(sim)
        try:
            api = store.connect().api
            worker = BrokerWorker(api, ACCOUNT, WorkerSettings(), cancel=store.cancel_token)
            Trader(sim).place_one(conid=AAPL, quantity=10)
            trades = Trader(sim, query_accounts=False).get("/iserver/account/trades").json()
            assert [t["size"] for t in trades] == [10]
            filled = datetime.fromtimestamp(trades[0]["trade_time_r"] / 1000, timezone.utc)

            snapshot = worker.account_snapshot()

            assert snapshot.cash == sim.account.cash
            assert snapshot.time is not None
            # The broker skips fills at or before the snapshot time: this one is in the cash.
            assert snapshot.time >= filled
            assert snapshot.time - filled < timedelta(seconds=1)
        finally:
            store.stop()
