"""Run the gateway simulator standalone until Ctrl-C.

``python -m backtrader_ibkr_cp.simulator --port 5000 [--no-tls] [--speed 60]
[--start 2024-03-04T14:30:00Z] [--seed 0] [--latency 0] [--account DU0000000] [--cash 1e6]
[--live]``
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from datetime import datetime

from .facade import GatewaySimulator


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO time; use e.g. 2024-03-04T14:30:00Z"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backtrader_ibkr_cp.simulator",
        description="Serve a simulated IBKR Client Portal Gateway on loopback until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=5000, help="port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    parser.add_argument("--speed", type=float, default=1.0, help="market clock speed (x real)")
    parser.add_argument("--start", type=_timestamp, default=None, help="simulated start time")
    parser.add_argument("--seed", type=int, default=0, help="market seed")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per answer")
    parser.add_argument(
        "--session-timeout", type=float, default=360.0, help="idle seconds before session loss"
    )
    parser.add_argument(
        "--penalty-seconds", type=float, default=600.0, help="pacing penalty box length"
    )
    parser.add_argument("--account", default="DU0000000", help="the account id served")
    parser.add_argument("--cash", type=float, default=1_000_000.0, help="starting cash (USD)")
    parser.add_argument("--live", action="store_true", help="report isPaper false")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    sim = GatewaySimulator(
        seed=args.seed,
        speed=args.speed,
        start=args.start,
        tls=not args.no_tls,
        host=args.host,
        port=args.port,
        session_timeout=args.session_timeout,
        penalty_seconds=args.penalty_seconds,
        latency=args.latency,
        account=args.account,
        paper=not args.live,
        cash=args.cash,
    )
    with sim:
        print(f"IBKR gateway simulator serving {sim.api_url}", flush=True)
        print(f"simulated time {sim.now().isoformat()} at speed {sim.speed:g}x", flush=True)
        if not args.no_tls:
            print(f"certificate {sim.cert_path} ({sim.cert_fingerprint})", flush=True)
        print("press Ctrl-C to stop", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
