"""``GatewaySimulator``: IBKR's Client Portal Gateway and backend, served on loopback."""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType

from .bars import BarSource, SimBar, truth
from .calendar import BarSize
from .clock import SimClock
from .context import Identity, SimContext
from .faults import FaultQueue
from .gates import Gate
from .gateway import API_PREFIX, Gateway
from .instruments import US_EXCHANGES, InstrumentBook, SimInstrument, default_instruments
from .market import MarketModel
from .orders.desk import OrderListener, TradingDesk
from .orders.state import SimAccount
from .orders.ticker import EngineTicker
from .pacing import Pacer, SimLimits
from .server import SimHTTPServer
from .session import SessionState
from .stats import SimStats
from .tls import process_certificate, server_context
from .ws_hub import WebSocketHub

__all__ = ["GatewaySimulator"]

_LOOPBACK_NAMES = {"localhost": "127.0.0.1"}
#: IBKR account ids: U/F/I (live) or DU/DF/DI (paper), an optional letter, then digits.
_ACCOUNT_ID = re.compile(r"D?[UFI][A-Z]?[0-9]+")
#: Real seconds between the order engine's ticks when no request arrives.
TICK_SECONDS = 0.1


def _loopback(host: str) -> str:
    address = _LOOPBACK_NAMES.get(host, host)
    parts = address.split(".")
    if len(parts) != 4 or parts[0] != "127" or not all(p.isdigit() for p in parts):
        raise ValueError(f"host {host!r} is not an IPv4 loopback address; use 127.0.0.1")
    return address


class GatewaySimulator:
    """A simulated IBKR Client Portal Gateway (and IBKR's backend) over real HTTP(S).

    Use as a context manager (``with GatewaySimulator() as sim: ... sim.url``) or call
    :meth:`start` / :meth:`stop` (both idempotent; stop joins every thread and closes every
    socket). The API lives under ``sim.api_url`` (``sim.url + "/v1/api"``).

    Args:
        seed: selects the deterministic market (same seed, same bars).
        speed: simulated seconds per real second for the market clock (0 freezes it).
        start: simulated time at start-up (tz-aware; naive means UTC; None = real now).
        tls: serve HTTPS with a self-signed certificate (``cert_path``, ``cert_fingerprint``);
            False serves plain HTTP (behind IBKR's real gateway).
        host, port: loopback address to bind; port 0 picks a free port.
        session_timeout: real seconds without any request before the brokerage session is lost.
        penalty_seconds: real seconds a pacing violation keeps answering 429 (IBKR: 600-900).
        latency: seconds added to every API answer (settable later as ``sim.latency``).
        authenticated: start with a brokerage session (False: logged in, session not open).
        outside_rth_default: ``outsideRth`` of history requests that do not send it.
        limits: pacing limits (:class:`SimLimits`).
        account: the one account id served (``DU...`` for paper, ``U...`` for live).
        paper: ``isPaper`` of ``/iserver/accounts``.
        cash: starting cash in USD (>= 0).
        ws_heartbeat: real seconds between the WebSocket's ``system`` heartbeats (IBKR: ~10).
        ws_subscription_lifetime: real seconds an ``smd`` WebSocket subscription lives after
            its last ``smd`` command (IBKR ends them after ~15 minutes); None: forever.
        websocket: serve the WebSocket (False: ``/v1/api/ws`` answers 404, as a gateway
            without one would).
        monotonic: the real clock, in seconds, that drives the market clock (at ``speed``),
            the session's idle timeout, the pacing windows and the penalty box (default
            ``time.monotonic``; a test passes a clock it moves by hand, e.g. a fake clock's
            ``now``, so those are exact). Latency, held answers and the WebSocket use real
            time.

    The WebSocket (``/v1/api/ws``, :mod:`.ws_hub`) shares the port; its ground truth is
    ``stats.ws_connections`` and ``stats.ws_messages``, its controls
    :meth:`drop_websockets`, :meth:`silence_websockets` and
    :meth:`age_websocket_subscriptions`.

    Orders: the simulator plays IBKR's order engine for ``account`` (:mod:`.orders`); its
    ground truth is :attr:`account`, and :meth:`add_order_listener` reports every order change
    and execution as IBKR's ``sor``/``str`` WebSocket messages. The engine follows the
    simulated clock: every request, :meth:`advance`, :meth:`set_time`, :attr:`account` and a
    ticker thread (every 0.1 real seconds) bring it up to :meth:`now`.

    Threading: the HTTP server runs its own threads and the order ticker one more; every
    public method is thread-safe. Order listeners run on those threads (see
    :meth:`add_order_listener`).
    """

    def __init__(
        self,
        seed: int = 0,
        speed: float = 1.0,
        start: datetime | None = None,
        tls: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        session_timeout: float = 360.0,
        penalty_seconds: float = 600.0,
        latency: float = 0.0,
        authenticated: bool = True,
        outside_rth_default: bool = False,
        limits: SimLimits | None = None,
        account: str = "DU0000000",
        paper: bool = True,
        cash: float = 1_000_000.0,
        ws_heartbeat: float = 10.0,
        ws_subscription_lifetime: float | None = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
        websocket: bool = True,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency!r}")
        if not isinstance(account, str) or not _ACCOUNT_ID.fullmatch(account):
            raise ValueError(
                f"account {account!r} is not an IBKR account id; use e.g. DU1234567 (paper) "
                "or U1234567 (live)"
            )
        if not math.isfinite(cash) or cash < 0:
            raise ValueError(f"cash must be a finite amount >= 0 USD, got {cash!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535 (0 = any free port), got {port!r}")
        self._host = _loopback(host)
        self._port = port
        self._tls = tls
        self._clock = SimClock(speed, start, monotonic)
        self._book = InstrumentBook(default_instruments())
        self._market = MarketModel(seed)
        self._stats = SimStats()
        self._faults = FaultQueue()
        session = SessionState(session_timeout, authenticated, monotonic)
        identity = Identity(account=account, paper=paper)
        self._desk = TradingDesk(
            self._clock, self._market, self._book, session, account, cash, identity.user_name
        )
        self._ctx = SimContext(
            clock=self._clock,
            instruments=self._book,
            market=self._market,
            bars=BarSource(self._market),
            session=session,
            stats=self._stats,
            trading=self._desk,
            outside_rth_default=outside_rth_default,
            secure=tls,
            identity=identity,
        )
        self._ticker = EngineTicker(self._desk.advance, TICK_SECONDS, "ibkr-sim-orders")
        pacer = Pacer(
            limits or SimLimits(),
            penalty_seconds,
            monotonic,
            on_history_peak=self._stats.record_history_peak,
        )
        self._gateway = Gateway(self._ctx, pacer, self._faults, latency)
        self._sockets = WebSocketHub(
            self._ctx,
            self._faults,
            heartbeat=ws_heartbeat,
            lifetime=ws_subscription_lifetime,
        )
        self._serves_websocket = websocket
        self._lock = threading.Lock()
        self._server: SimHTTPServer | None = None
        self._cert_path: str | None = None
        self._bundle = process_certificate() if tls else None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> GatewaySimulator:
        """Bind and serve in background threads (no-op when already running)."""
        with self._lock:
            if self._server is not None:
                return self
            context = server_context(self._bundle) if self._bundle is not None else None
            server = SimHTTPServer(
                (self._host, self._port),
                self._gateway,
                self.now,
                context,
                self._sockets if self._serves_websocket else None,
            )
            if self._bundle is not None:
                handle, path = tempfile.mkstemp(prefix="ibkr-sim-cert-", suffix=".pem")
                with os.fdopen(handle, "wb") as file:
                    file.write(self._bundle.cert_pem)
                self._cert_path = path
            self._port = server.server_address[1]
            server.start()
            self._sockets.start()
            self._ticker.start()
            self._server = server
            return self

    def stop(self) -> None:
        """Stop serving, cut connections, join threads, remove the certificate file."""
        with self._lock:
            server, self._server = self._server, None
            path, self._cert_path = self._cert_path, None
        self._ticker.stop()
        self._sockets.stop()
        if server is not None:
            server.stop()
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def __enter__(self) -> GatewaySimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    # -- addresses and TLS -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._port

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT`` (``http://`` with ``tls=False``), without ``/v1/api``."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def api_url(self) -> str:
        """``url + "/v1/api"``."""
        return self.url + API_PREFIX

    @property
    def cert_pem(self) -> bytes:
        """The served certificate (PEM); ValueError with ``tls=False``."""
        if self._bundle is None:
            raise ValueError("this simulator serves plain HTTP (tls=False); it has no certificate")
        return self._bundle.cert_pem

    @property
    def cert_path(self) -> str:
        """A PEM file of the certificate, usable as ``verify=``; exists while running."""
        if self._cert_path is None:
            raise ValueError("no certificate file: start the simulator with tls=True first")
        return self._cert_path

    @property
    def cert_fingerprint(self) -> str:
        """``"sha256:AA:BB:..."``: SHA-256 of the DER leaf certificate."""
        if self._bundle is None:
            raise ValueError("this simulator serves plain HTTP (tls=False); it has no certificate")
        return self._bundle.fingerprint

    # -- time --------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The simulated market time (UTC-aware)."""
        return self._clock.now()

    def set_time(self, value: datetime) -> None:
        """Jump the market clock to ``value`` (naive = UTC); it keeps running at ``speed``.

        The order engine walks the market up to ``value`` before this returns. Going back in
        time pauses order matching until the clock passes the last second it evaluated.
        """
        self._clock.set_time(value)
        self._desk.advance()
        self._sockets.push()

    def advance(self, seconds: float) -> datetime:
        """Move the market clock forward ``seconds`` simulated seconds; returns the new time.

        Every fill, expiry and auction due by then has happened when this returns, and every
        WebSocket update due by then is queued (ahead of any later answer on that socket).
        """
        moved = self._clock.advance(seconds)
        self._desk.advance()
        self._sockets.push()
        return moved

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._clock.speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._clock.set_speed(value)

    # -- instruments and market --------------------------------------------------------------

    @property
    def seed(self) -> int:
        """The market seed."""
        return self._market.seed

    @property
    def instruments(self) -> Mapping[int, SimInstrument]:
        """Read-only mapping conid -> :class:`SimInstrument` (live view)."""
        return self._book.view

    def add_instrument(
        self,
        symbol: str,
        conid: int,
        exchange: str = "NYSE",
        name: str | None = None,
        base_price: float = 100.0,
        currency: str = "USD",
        sec_type: str = "STK",
        *,
        us: bool | None = None,
    ) -> SimInstrument:
        """Add a listing; ``us`` defaults to a USD listing on a US exchange."""
        symbol = symbol.strip().upper()
        if us is None:
            us = exchange.upper() in US_EXCHANGES and currency.upper() == "USD"
        instrument = SimInstrument(
            conid=int(conid),
            symbol=symbol,
            name=name or f"{symbol} CORP",
            exchange=exchange.upper(),
            currency=currency.upper(),
            sec_type=sec_type.upper(),
            base_price=float(base_price),
            us=us,
        )
        self._book.add(instrument)
        return instrument

    def conid(self, symbol: str) -> int:
        """Conid of ``symbol``'s primary US listing; KeyError when there is none."""
        return self._book.primary(symbol).conid

    def set_availability(self, conid: int, code: str) -> None:
        """Market-data availability of ``conid``: ``"RpB"`` (default), ``"DpB"``, ``"N"`` ..."""
        self._book.set_availability(conid, code)

    def set_halted(self, conid: int, halted: bool = True) -> None:
        """Mark ``conid`` halted (snapshot ``31`` gets the ``H`` prefix)."""
        self._book.set_halted(conid, halted)

    def truth(
        self,
        symbol_or_conid: str | int,
        bar: str = "1min",
        start: datetime | None = None,
        end: datetime | None = None,
        outside_rth: bool = False,
    ) -> list[SimBar]:
        """Ground-truth bars complete at :meth:`now` (bar end <= now), volume in shares.

        ``start`` inclusive and ``end`` exclusive on bar start times (naive = UTC); ``start``
        defaults to the start of the latest session that began, ``end`` to now.
        """
        instrument = self._book.resolve(symbol_or_conid)
        size = BarSize.parse(bar)
        return truth(self._ctx.bars, instrument, size, start, end, self._clock.now(), outside_rth)

    # -- the account -------------------------------------------------------------------------

    @property
    def account(self) -> SimAccount:
        """Ground truth of the account at :meth:`now`: ``cash``, ``positions`` ``{conid:
        signed shares}``, ``orders``, ``executions`` (a consistent, frozen copy)."""
        return self._desk.snapshot()

    def add_order_listener(self, listener: OrderListener) -> None:
        """Call ``listener(message)`` for every order change and execution from now on.

        ``message`` is a fresh dict shaped like IBKR's WebSocket messages:
        ``{"topic": "sor", "args": [order]}`` (the full live-orders object the first time an
        order is reported, later only the changed fields plus ``acct`` and ``orderId``) or
        ``{"topic": "str", "args": [execution]}`` (a ``/iserver/account/trades`` element).
        Messages arrive in order, one at a time, on a simulator thread (a request handler or
        the ticker); the listener must return quickly, and its exceptions are logged.
        """
        self._desk.add_listener(listener)

    def remove_order_listener(self, listener: OrderListener) -> None:
        """Stop calling ``listener`` (ValueError when it was never added)."""
        self._desk.remove_listener(listener)

    # -- session -----------------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        """True while the brokerage session is open."""
        return self._ctx.session.authenticated

    def expire_session(self) -> None:
        """Drop the brokerage session now (as after the idle timeout); open WebSockets are
        told (``sts``) before this returns."""
        self._ctx.session.drop_brokerage()
        self._sockets.push()

    def compete(self) -> None:
        """Another login takes the brokerage session now (``competing: true``); open
        WebSockets are told (``sts``) before this returns."""
        self._ctx.session.take_over()
        self._sockets.push()

    # -- the WebSocket -----------------------------------------------------------------------

    def drop_websockets(self) -> int:
        """Cut every open WebSocket now, without a close frame (a network cut); returns how
        many were open."""
        return self._sockets.drop()

    def silence_websockets(self) -> int:
        """Make every WebSocket open now send nothing more (no heartbeat, data or answer)
        while staying open, as a half-dead connection; sockets opened later are normal.
        Returns how many were silenced."""
        return self._sockets.silence()

    def age_websocket_subscriptions(self, seconds: float) -> None:
        """Make every open ``smd`` subscription ``seconds`` (real seconds) older, as if that
        time had passed, then push: those past ``ws_subscription_lifetime`` stop updating."""
        self._sockets.age(seconds)

    # -- pacing, latency, faults, stats ------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added to every API answer."""
        return self._gateway.latency

    @latency.setter
    def latency(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {value!r}")
        self._gateway.latency = float(value)

    @property
    def limits(self) -> SimLimits:
        """The enforced pacing limits (assign a new :class:`SimLimits` to change them)."""
        return self._gateway.pacer.limits

    @limits.setter
    def limits(self, value: SimLimits) -> None:
        self._gateway.pacer.limits = value

    @property
    def penalty_remaining(self) -> float:
        """Real seconds left in the pacing penalty box (0 when not penalized)."""
        return self._gateway.pacer.penalty_remaining()

    def clear_penalty(self) -> None:
        """End the pacing penalty box now."""
        self._gateway.pacer.clear_penalty()

    def inject(
        self, kind: str, count: int = 1, *, path: str | None = None, seconds: float | None = None
    ) -> None:
        """Make the next ``count`` matching requests fail with ``kind`` (see :mod:`.faults`)."""
        self._faults.inject(kind, count, path=path, seconds=seconds)

    def gate(self, path: str) -> Gate:
        """Hold the answers to API ``path`` (e.g. ``"/iserver/marketdata/history"``) until
        the returned :class:`~.gates.Gate` opens: ``with sim.gate(path) as gate: ...``
        (leaving the block opens it; so does :meth:`stop`). Only admitted requests wait (a
        429 is answered at once); a held history request keeps its slot. For tests that need
        requests in flight together; ``gate.wait_held(n, timeout)`` waits until ``n`` are."""
        if path.startswith(API_PREFIX):
            path = path[len(API_PREFIX) :]
        return self._gateway.gates.add(path)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """Uses left over all pending faults."""
        return self._faults.pending

    @property
    def stats(self) -> SimStats:
        """Request statistics (see :class:`SimStats`)."""
        return self._stats

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"GatewaySimulator({self.url}, seed={self.seed}, speed={self.speed}, {state})"
