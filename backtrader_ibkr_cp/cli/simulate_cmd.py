"""``ibkr-cp simulate``: serve the gateway simulator (optionally behind IBKR's real gateway).

It serves until Ctrl-C, SIGTERM (``timeout``, ``docker stop``, systemd) or SIGHUP (the
terminal closed); each stops it the same way: IBKR's Java gateway (in its own process group)
is killed and reaped, its temporary ``ibkr-gw-*`` folder removed, then the simulator stops.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from types import FrameType
from typing import IO, Any

from ..errors import ConfigError, MarketError
from .common import parse_date

__all__ = ["add_simulate", "serve_simulator"]


def add_simulate(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        parents=parents,
        help="serve the gateway simulator on loopback until Ctrl-C (or SIGTERM)",
        description="Serve a simulated Client Portal Gateway (seeded market, fast clock, "
        "IBKR's pacing rules) on 127.0.0.1. Plugins may add instruments. With "
        "--behind-real-gateway, IBKR's real gateway (Java) serves the given port and forwards "
        "to the simulator.",
    )
    p.add_argument("--port", type=int, default=5000, help="port to serve (0 = any free port)")
    p.add_argument("--no-tls", action="store_true", help="serve plain HTTP instead of HTTPS")
    p.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)"
    )
    p.add_argument(
        "--start", type=parse_date, default=None,
        help="simulated time at start-up, e.g. 2024-03-04T14:30:00Z (default: now)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="market seed (same seed, same bars)")
    p.add_argument(
        "--behind-real-gateway", action="store_true",
        help="run IBKR's real Client Portal Gateway on --port in front of the simulator "
        "(needs Java; downloads the gateway from npm on first use)",
    )  # fmt: skip
    p.set_defaults(func=run_simulate)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port; use 0-65535 (0 = any free port)")
    if args.speed < 0:
        raise ConfigError(f"--speed {args.speed:g} must be >= 0 (0 freezes the clock)")


def serve_simulator(
    *,
    port: int,
    tls: bool,
    speed: float,
    start: datetime | None,
    seed: int,
    behind_real_gateway: bool,
    out: IO[str],
    wait: Callable[[], None],
) -> int:
    """Start the simulator (and the real gateway), print where, call ``wait()``, stop."""
    from ..plugins import apply_simulator_instruments
    from ..simulator import GatewaySimulator

    with contextlib.ExitStack() as stack:
        sim_port = 0 if behind_real_gateway else port
        sim = GatewaySimulator(
            seed=seed, speed=speed, start=start, tls=tls and not behind_real_gateway, port=sim_port
        )
        added = apply_simulator_instruments(sim)
        stack.enter_context(sim)
        url = sim.url
        verify_hint = f"--verify {sim.cert_fingerprint}" if tls and not behind_real_gateway else ""
        if behind_real_gateway:
            gateway = _real_gateway(sim.port, port)
            try:
                stack.enter_context(gateway)
            except MarketError:
                raise
            except Exception as exc:
                raise MarketError(
                    f"IBKR's real gateway did not start ({_one_line(exc)}); check that Java 17+ "
                    "is installed and the port is free, or run without --behind-real-gateway"
                ) from exc
            url = gateway.url
            verify_hint = f"--verify {gateway.cert_fingerprint}"
            out.write(
                f"IBKR's real gateway at {url}, forwarding to the gateway simulator at "
                f"{sim.url} (the simulated IBKR backend)\n"
                f"IBKR's real gateway runs as Java pid {gateway.pid} in {gateway.workdir} "
                "(conf.yaml, logs; removed on exit)\n"
                f"clients use {url}/v1/api (IBKR's real gateway; simulator seed {seed}, speed "
                f"{speed:g}x)\n"
            )
        else:
            out.write(f"gateway simulator serving {url}/v1/api (seed {seed}, speed {speed:g}x)\n")
        out.write(f"simulated time {sim.now().isoformat()}\n")
        if added:
            out.write(f"{added} instrument(s) added by plugins\n")
        hint = f" {verify_hint}" if verify_hint else ""
        out.write(f"try: ibkr-cp status --gateway {url}{hint}\n")
        # The last banner line is written inside the block: a SIGTERM sent as soon as it is
        # read must land where it is expected (it exited 130, "interrupted", when it came
        # between the flush and the wait).
        with contextlib.suppress(KeyboardInterrupt):
            out.write("press Ctrl-C to stop (or send SIGTERM)\n")
            out.flush()
            wait()
    return 0


def _real_gateway(backend_port: int, listen_port: int) -> Any:
    from ..simulator.realgateway import RealGateway, RealGatewayError, ensure_gateway_dist

    try:
        return RealGateway(backend_port, dist=ensure_gateway_dist(), listen_port=listen_port)
    except RealGatewayError as exc:  # npm, the registry, the cache: the message says what to do
        raise MarketError(str(exc)) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _forever() -> None:
    threading.Event().wait()


@contextlib.contextmanager
def stop_on_termination() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, as Ctrl-C
    does, so ``with`` blocks and ``finally`` clauses clean up (Python's default for both is to
    die at once, leaving child processes and temporary folders behind). The previous handlers
    are restored on exit. Outside the main thread it does nothing (signals go to it only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        del frame
        raise KeyboardInterrupt(signal.Signals(signum).name)

    wanted = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, interrupt) for signum in wanted}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_simulate(args: argparse.Namespace) -> int:
    _check(args)
    with stop_on_termination():
        return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    return serve_simulator(
        port=args.port,
        tls=not args.no_tls,
        speed=args.speed,
        start=args.start,
        seed=args.seed,
        behind_real_gateway=args.behind_real_gateway,
        out=sys.stdout,
        wait=_forever,
    )
