#!/usr/bin/env python3
"""Re-record the bundled cassette ``cassettes/aapl_msft_5min_synthetic.json``.

The data is SYNTHETIC: it comes from the project's gateway simulator (seeded, deterministic),
not from IBKR. The simulator's clock is frozen after the recorded span, so every run of this
script records the same requests and the same bars (only the simulator's ``serverId`` and
``travelTime`` counters can differ).

    .venv/bin/python scripts/record_cassette.py            # the bundled cassette
    .venv/bin/python scripts/record_cassette.py --client   # record GatewayClient calls instead

The recording is a historical backtrader run through ``IBKRCPStore`` (what
``IBKRCPStore(cassette=PATH)`` with the same symbols, bar and dates replays), made with
``ibkr-cp record``'s helper.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

from backtrader_ibkr_cp.bt.backtest import record_store_run
from backtrader_ibkr_cp.cassettes.recording import record_client_run
from backtrader_ibkr_cp.simulator import GatewaySimulator

ROOT = Path(__file__).resolve().parents[1]
CASSETTE = ROOT / "cassettes" / "aapl_msft_5min_synthetic.json"
SYMBOLS = ("AAPL", "MSFT")
BAR = "5min"
START = datetime(2024, 1, 2, tzinfo=timezone.utc)  # first session of 2024
END = datetime(2024, 4, 1, tzinfo=timezone.utc)  # three months of sessions
SEED = 20240102
#: The simulator's frozen clock: after END, so every bar of the span is complete.
SIM_NOW = datetime(2024, 4, 2, 22, 0, tzinfo=timezone.utc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=CASSETTE, help=f"default {CASSETTE}")
    parser.add_argument("--client", action="store_true", help="record GatewayClient calls")
    args = parser.parse_args(argv)
    metadata = {
        "synthetic": True,
        "source": "backtrader_ibkr_cp GatewaySimulator (synthetic market, not IBKR data)",
        "simulator_seed": SEED,
        "simulator_now": SIM_NOW.isoformat(),
        "script": "scripts/record_cassette.py",
    }
    record = record_client_run if args.client else record_store_run
    with GatewaySimulator(seed=SEED, speed=0.0, start=SIM_NOW) as sim:
        result = record(
            args.output, SYMBOLS, BAR, START, END, gateway_url=sim.url, metadata=metadata
        )
    counts = ", ".join(f"{symbol}: {n} bars" for symbol, n in result.bars.items())
    print(
        f"{result.path}: {result.interactions} interactions, {counts}, {result.size_bytes:,} bytes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
