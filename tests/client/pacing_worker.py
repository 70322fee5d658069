"""A separate process using one gateway, for the cross-process pacing tests (run as a script).

``python pacing_worker.py fetch URL SYMBOL``: what a backtest does at start: authenticate,
search the symbol and fetch a week of 1-minute bars (several history windows, run
concurrently), with a retry policy that fails at once on a 429. Prints ``ready`` once its
client is built and starts when a line arrives on stdin (so several workers start together),
then prints ``{"bars": N}``.

``python pacing_worker.py hold URL COUNT``: take COUNT history slots of the gateway's shared
pacer, print ``holding <pid>`` and wait for stdin to close (the test kills it meanwhile).

The shared pacing folder comes from ``$IBKR_CP_PACING_DIR``, which the test sets.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from datetime import datetime, timezone

from backtrader_ibkr_cp import GatewayClient
from backtrader_ibkr_cp.client.pacing import Pacer
from backtrader_ibkr_cp.client.retry import RetryPolicy

HISTORY = "/iserver/marketdata/history"
START = datetime(2024, 2, 26, tzinfo=timezone.utc)
END = datetime(2024, 3, 5, tzinfo=timezone.utc)


def fetch(url: str, symbol: str) -> int:
    retry = RetryPolicy(rate_limit_retries=0)  # a 429 fails the run at once
    with GatewayClient(url, retry=retry, plugins=False) as client:
        print("ready", flush=True)
        sys.stdin.readline()
        client.authenticate()
        if not client.search_contract(symbol):
            raise SystemExit(f"no contract for {symbol}")
        bars = client.fetch_bars(symbol, "1min", START, END)
    print(json.dumps({"bars": len(bars)}), flush=True)
    return 0


def hold(url: str, count: int) -> int:
    pacer = Pacer.shared(url)
    with ExitStack() as stack:
        for _ in range(count):
            stack.enter_context(pacer.slot(HISTORY))
        print(f"holding {pacer.state().in_flight_pids('history')}", flush=True)
        sys.stdin.read()  # until the test closes stdin or kills this process
    return 0


def main(argv: list[str]) -> int:
    mode, url, arg = argv[1:4]
    if mode == "fetch":
        return fetch(url, arg)
    if mode == "hold":
        return hold(url, int(arg))
    raise SystemExit(f"unknown mode {mode!r}; use fetch or hold")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
