"""``IBKRCPStore``: backtrader's Store for an IBKR Client Portal Gateway.

One store per gateway configuration: ``IBKRCPStore(gateway_url=...)`` returns the same store
for the same parameters and a different one for different parameters (backtrader's own
stores are process-wide singletons, which makes two gateways, or two test runs, share state).
``IBKRCPStore._reset()`` stops and forgets every store (tests).

Life: the store's resources (one GatewayClient with its keep-alive thread, one WebSocket and
one snapshot poller shared by its live feeds and its broker, one runner thread per feed)
belong to the runs that use them. Each ``cerebro.run()`` holds the store from ``start()`` to
``stop()``, each feed from its start to its stop; the resources are opened on first use and
closed when the last holder lets go, so a quick backtest finishing in one thread never closes
the client under a slower one in another. Store messages go to the run that caused them
(client-wide ones to every run), and a run's undelivered messages end with it.

Threading model: every wait (connecting, back-offs) goes through the store's clock and ends
when the store is released; no lock is held across I/O or a wait. ``stop()`` signals, closes,
then joins.

Pickling (``cerebro.optstrategy`` with several processes): a store pickles as its parameters;
locks, clients and threads are rebuilt, on first use, on the other side.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
from pathlib import Path
from typing import Any

import backtrader as bt

from ..barstore import BarStore
from ..client.transport import ClientEvent
from ..client.websocket import GatewaySocket
from ..errors import AuthenticationError, ConfigError, MarketError
from ..gateway import GatewayClient
from ..history.service import BarService
from ..history.stored import StoredBars
from ..live.poller import SnapshotPoller
from ..live.runner import MarketSource, StreamRunner
from ..live.streaming import STREAMING_MODES, StreamingSource
from ..models import InvalidBar
from ..runtime import Connection, open_connection
from ..timing import SYSTEM_CLOCK, Backoff, CancelToken, Clock, Signal

__all__ = ["IBKRCPStore"]

log = logging.getLogger(__name__)

#: Messages kept for a run that does not drain them (historical runs never do).
RUN_MESSAGES_LIMIT = 10_000
#: Connection attempts of a historical run when the gateway cannot be reached (a backtest
#: raises instead of waiting for the gateway forever).
HISTORICAL_CONNECT_ATTEMPTS = 3


def _hashable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


class MetaIBKRCPStore(bt.store.MetaSingleton):  # type: ignore[misc]
    """One instance per distinct set of parameters (instead of one per process)."""

    def __init__(cls, name: str, bases: tuple[type, ...], dct: dict[str, Any]) -> None:
        super().__init__(name, bases, dct)
        cls._instances: dict[tuple[Any, ...], Any] = {}
        cls._instances_lock = threading.Lock()

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise ConfigError(
                f"{cls.__name__} takes keyword parameters only, e.g. "
                f"{cls.__name__}(gateway_url='https://localhost:5000')"
            )
        names = list(cls.params._getkeys())
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} parameter(s) {', '.join(unknown)}; valid: "
                f"{', '.join(names)}"
            )
        defaults = dict(cls.params._getitems())
        key = tuple((n, _hashable(kwargs.get(n, defaults[n]))) for n in names)
        with cls._instances_lock:
            store = cls._instances.get(key)
            if store is None:
                # Skip MetaSingleton.__call__: build a fresh instance through MetaParams.
                store = super(bt.store.MetaSingleton, cls).__call__(**kwargs)
                cls._instances[key] = store
            return store


class _Run:
    """One ``cerebro.run()`` using the store: its undelivered messages and its feeds."""

    def __init__(self) -> None:
        self.messages: collections.deque[tuple[Any, tuple[Any, ...], dict[str, Any]]] = (
            collections.deque(maxlen=RUN_MESSAGES_LIMIT)
        )
        self.feeds: list[Any] = []

    def put(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.messages.append((msg, args, kwargs))


class IBKRCPStore(bt.Store, metaclass=MetaIBKRCPStore):  # type: ignore[misc]
    """backtrader Store for the IBKR Client Portal Gateway.

    Params:
        gateway_url (``"https://localhost:5000"``): the gateway (``/v1/api`` optional).
        verify (None): TLS verification: None (loopback gateways unverified, others
            verified), True, False, a CA bundle path, or ``"sha256:AA:BB:..."`` pinning the
            gateway certificate's fingerprint.
        timeout (10.0): seconds per HTTP request.
        reconnect (-1): reconnection attempts of a live feed after a lost connection, and
            attempts to reach the gateway when it starts: -1 forever (rides out a gateway
            restart and a new login), 0 none. A historical run makes at most 3 attempts and
            then raises.
        reconnect_timeout (5.0): seconds before the first reconnection attempt; the wait
            doubles up to 30 s (or this value, if longer).
        poll_interval (1.0): seconds between snapshot polls: one request per poll for every
            live feed of this store (never below 0.2 s, so at least half of IBKR's 10
            requests/s stay free for history; IBKR refreshes snapshots every 0.5 s).
        history_concurrency (4): concurrent history requests (IBKR allows 5).
        strict (False): a bar that fails validation stops the feed with a
            DataIntegrityError instead of being dropped (and reported via notify_store).
        cache_dir (None): folder for the on-disk contract cache (None: memory only).
        stall_timeout (30.0): seconds without market data before a live feed calls its
            connection broken (CONNBROKEN) and reconnects.
        cassette (None): a cassette (path or ``Cassette``) to record gateway traffic into
            or replay it from, offline (see ``backtrader_ibkr_cp.cassettes``).
        record_mode (None): the cassette's record mode (None: replay only, ``"none"``).
        pacing (None): the pacing limits (``PacingLimits``) instead of IBKR's documented ones
            (for a simulator with relaxed limits; against IBKR, leave it None).
        account (None): the account ``getbroker()`` trades (None: the gateway's selected
            account).
        allow_live (False): let ``getbroker()`` trade a live (non-paper) account; without it
            a live account is refused before any order is sent.
        bar_store (None): a Parquet bar store (a folder, a ``pyarrow.fs`` URI such as
            ``s3://bucket/bars``, or a ``BarStore``) the feeds read through: history comes from
            the store, only what it lacks is fetched (and written: completed bars only), and a
            historical run the store covers needs no gateway at all (see docs/barstore.md).
            None: no store.
        streaming (``"auto"``): where live market data (and the broker's order updates)
            come from. ``"auto"``: the gateway's WebSocket (no snapshot requests while it is
            up), polled snapshots while it is down or when the gateway serves none, back to
            the socket when it recovers. ``"websocket"``: the socket, polling only while it
            reconnects (a gateway without one is an error). ``"poll"``: snapshots only (one
            request per ``poll_interval`` for all feeds). A run with a ``cassette`` polls (a
            cassette records HTTP only).
    """

    params = (
        ("gateway_url", "https://localhost:5000"),
        ("verify", None),
        ("timeout", 10.0),
        ("reconnect", -1),
        ("reconnect_timeout", 5.0),
        ("poll_interval", 1.0),
        ("history_concurrency", 4),
        ("strict", False),
        ("cache_dir", None),
        ("stall_timeout", 30.0),
        ("cassette", None),
        ("record_mode", None),
        ("pacing", None),
        ("account", None),
        ("allow_live", False),
        ("bar_store", None),
        ("streaming", "auto"),
    )

    BrokerCls: Any = None  # set by IBKRCPBroker's metaclass
    DataCls: Any = None  # set by IBKRCPData's metaclass
    #: The clock every wait of the store uses (tests inject a fake one).
    clock: Clock = SYSTEM_CLOCK
    #: Extra keyword arguments of the store's GatewaySocket (heartbeat, silence and refresh
    #: intervals, back-off: see ``client.websocket.GatewaySocket``), for tuning and tests.
    websocket_options: dict[str, Any] = {}

    def __init__(self, **kwargs: Any) -> None:
        # backtrader's metaclass has already consumed the params (``self.p``); ``kwargs``
        # is empty and only declared so that type checkers accept IBKRCPStore(param=...).
        self._validate()
        self._init_state()

    def _init_state(self) -> None:
        self.notifs: collections.deque[Any] = collections.deque()  # unused: see _Run
        self.datas: list[Any] = []
        self.broker: Any = None
        self._lock = threading.Lock()
        self._runs: dict[int, _Run] = {}
        self._holds = 0
        self._token = CancelToken()
        self._connection: Connection | None = None
        self._connecting: Signal | None = None
        self._connect_error: MarketError | None = None
        self._poller: SnapshotPoller | None = None
        self._socket: GatewaySocket | None = None
        self._source: StreamingSource | None = None
        self._runners: list[StreamRunner] = []
        self._keepalive_failing = False

    def _validate(self) -> None:
        p = self.p
        if not isinstance(p.gateway_url, str) or not p.gateway_url.strip():
            raise ConfigError(f"gateway_url must be a URL string, got {p.gateway_url!r}")
        if not isinstance(p.reconnect, int) or p.reconnect < -1:
            raise ConfigError(f"reconnect={p.reconnect!r}: use -1 (forever), 0 (never) or > 0")
        for name in ("timeout", "reconnect_timeout", "poll_interval", "stall_timeout"):
            value = getattr(p, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name}={value!r}: use a number of seconds >= 0")
        if p.poll_interval <= 0 or p.timeout <= 0:
            raise ConfigError("poll_interval and timeout must be > 0 seconds")
        if not isinstance(p.history_concurrency, int) or not 1 <= p.history_concurrency <= 5:
            raise ConfigError(
                f"history_concurrency={p.history_concurrency!r}: use 1 to 5 (IBKR allows 5)"
            )
        if p.streaming not in STREAMING_MODES:
            raise ConfigError(
                f"streaming={p.streaming!r}: use 'auto' (the WebSocket, polling while it is "
                "down), 'websocket' (the WebSocket only) or 'poll' (snapshot polling only)"
            )
        _ = self.bar_store  # a bad bar_store is refused now, not at the first bar

    # -- the bar store -----------------------------------------------------------------------

    @property
    def bar_store(self) -> BarStore | None:
        """The ``bar_store`` param as a :class:`BarStore` (built on first use), or None."""
        value = self.p.bar_store
        if value is None or isinstance(value, BarStore):
            return value
        built: BarStore | None = self.__dict__.get("_bar_store")
        if built is None:
            if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
                raise ConfigError(
                    f"bar_store={value!r}: use a folder, a pyarrow URI (file:///..., "
                    "s3://bucket/prefix), a BarStore, or None"
                )
            built = self.__dict__["_bar_store"] = BarStore(value)
        return built

    def bar_source(self, client: GatewayClient) -> BarService | StoredBars:
        """Where a feed's history comes from: ``client.bars``, read through the bar store
        when there is one."""
        bar_store = self.bar_store
        return client.bars if bar_store is None else StoredBars(client.bars, bar_store)

    # -- pickling (optstrategy workers) ----------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"p": self.p, "params": self.params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    # -- backtrader factories -----------------------------------------------------------

    def getdata(self, *args: Any, **kwargs: Any) -> Any:
        """An :class:`~backtrader_ibkr_cp.bt.feed.IBKRCPData` bound to this store."""
        return self.DataCls(*args, _store=self, **kwargs)

    def getbroker(self, *, simulated: bool = False, **kwargs: Any) -> Any:
        """An :class:`~backtrader_ibkr_cp.bt.broker.IBKRCPBroker` trading this store's account
        (``simulated=True``: backtrader's ``BackBroker``, local fills on live data)."""
        if simulated:
            return bt.brokers.BackBroker(**kwargs)
        return self.BrokerCls(_store=self, **kwargs)

    @classmethod
    def _reset(cls) -> None:
        """Stop every store and forget them (tests; a new process state)."""
        with cls._instances_lock:
            stores = list(cls._instances.values())
            cls._instances.clear()
        for store in stores:
            store._close()

    # -- runs and holds -------------------------------------------------------------------

    def start(self, data: Any = None, broker: Any = None) -> None:
        """Called by Cerebro at the start of a run (no arguments: the run holds the store
        until :meth:`stop`), by each feed (``data=``) and by a broker (``broker=``)."""
        if data is not None:
            self._cerebro = self._env = data._env
            with self._lock:
                if not any(d is data for d in self.datas):
                    self.datas.append(data)
            return
        if broker is not None:
            self.broker = broker
            return
        with self._lock:
            self._runs[threading.get_ident()] = _Run()
            self._holds += 1
            self._connect_error = None

    def stop(self) -> None:
        """Called by Cerebro at the end of its run: the run lets go of the store (its
        undelivered messages are dropped); the last holder closes the resources."""
        with self._lock:
            run = self._runs.pop(threading.get_ident(), None)
        if run is not None:
            self._release()

    def data_ready(self, data: Any) -> None:
        """A feed resolved its contract: the broker (if started) may load its position."""
        broker = self.broker
        if broker is not None and getattr(broker, "_worker", None) is not None:
            broker.data_started(data)

    def broker_ready(self, broker: Any) -> None:
        """The broker has read the account: feeds already resolved get their positions."""
        with self._lock:
            datas = [d for d in self.datas if getattr(d, "_contract", None) is not None]
        for data in datas:
            broker.data_started(data)

    def end_run(self) -> None:
        """End the calling thread's run without Cerebro (a feed raising out of
        ``cerebro.run()``: Cerebro then never calls the feeds' and the store's ``stop()``):
        every feed of the run lets go, then the run."""
        with self._lock:
            run = self._runs.get(threading.get_ident())
            feeds = list(run.feeds) if run is not None else []
        for feed in feeds:
            feed._detach()
        self.stop()

    def hold(self, feed: Any) -> None:
        """``feed`` starts using the store's resources (until :meth:`release`)."""
        with self._lock:
            self._holds += 1
            run = self._runs.get(threading.get_ident())
            if run is not None:
                run.feeds.append(feed)

    def release(self, feed: Any) -> None:
        """``feed`` stopped using them."""
        with self._lock:
            for run in self._runs.values():
                if feed in run.feeds:
                    run.feeds.remove(feed)
        self._release()

    def _release(self) -> None:
        with self._lock:
            self._holds = max(0, self._holds - 1)
            last = self._holds == 0
        if last:
            self._close()

    def _close(self) -> None:
        """Cancel every wait, stop the feeds' runners and the poller, close the client,
        then join the threads."""
        with self._lock:
            token, self._token = self._token, CancelToken()
            connection, self._connection = self._connection, None
            poller, self._poller = self._poller, None
            socket, self._socket = self._socket, None
            source, self._source = self._source, None
            runners, self._runners = self._runners, []
            self._holds = 0
            self._runs.clear()
        token.cancel("the store stopped")
        for runner in runners:
            runner.stop(timeout=0)
        if source is not None:
            source.close()
        if poller is not None:
            poller.stop(timeout=0)
        if socket is not None:
            socket.close()
        if connection is not None:
            connection.close()
        for runner in runners:
            runner.stop()
        if poller is not None:
            poller.stop()

    def add_runner(self, runner: StreamRunner) -> None:
        """Let the store stop and join a feed's runner when it closes."""
        with self._lock:
            self._runners.append(runner)

    def remove_runner(self, runner: StreamRunner) -> None:
        with self._lock:
            if runner in self._runners:
                self._runners.remove(runner)

    @property
    def cancel_token(self) -> CancelToken:
        """Cancelled when the store's resources close (feeds' runners take a child)."""
        return self._token

    # -- the connection ---------------------------------------------------------------------

    @property
    def client(self) -> GatewayClient | None:
        """The GatewayClient, or None before the first feed connected."""
        connection = self._connection
        return connection.client if connection is not None else None

    @property
    def replaying(self) -> bool:
        """True while a cassette replays (no gateway, no session to keep alive)."""
        connection = self._connection
        return connection is not None and connection.replaying

    def connect(self, *, historical: bool = False) -> GatewayClient:
        """The connected GatewayClient (authenticated, keep-alive running), opened on first
        use by one caller while the others wait. A gateway that cannot be reached is tried
        again ``reconnect`` times (-1 forever; a historical run: at most
        :data:`HISTORICAL_CONNECT_ATTEMPTS`), backing off from ``reconnect_timeout``; a
        gateway that is not logged in is not retried. Raises the typed error (and, for the
        rest of this run, raises it again without retrying)."""
        while True:
            with self._lock:
                if self._connection is not None:
                    return self._connection.client
                if self._connect_error is not None:
                    raise self._connect_error
                waiting = self._connecting
                if waiting is None:
                    self._connecting = Signal()
                token = self._token
            if waiting is None:
                break
            self.clock.wait(math.inf, waiting, token)
            token.raise_if_cancelled("connecting to the gateway")
        try:
            connection = self._open(historical, token)
        except MarketError as exc:
            with self._lock:
                self._connect_error = exc
            raise
        finally:
            with self._lock:
                signal, self._connecting = self._connecting, None
            if signal is not None:
                signal.set()
        with self._lock:
            if token.cancelled:  # the store closed meanwhile
                closed = connection
            else:
                self._connection, closed = connection, None
        if closed is not None:
            closed.close()
            token.raise_if_cancelled("connecting to the gateway")
        return connection.client

    def _open(self, historical: bool, token: CancelToken) -> Connection:
        p = self.p
        connection = open_connection(
            p.gateway_url,
            verify=p.verify,
            timeout=p.timeout,
            history_concurrency=p.history_concurrency,
            pacing=p.pacing,
            cache_dir=p.cache_dir,
            strict=p.strict,
            cassette=p.cassette,
            record_mode=p.record_mode,
            on_invalid_bar=self._on_invalid_bar,
        )
        client = connection.client
        client.add_listener(self._on_client_event)
        limit = p.reconnect
        if historical:
            limit = min(limit, HISTORICAL_CONNECT_ATTEMPTS - 1) if limit >= 0 else 2
        backoff = Backoff(
            initial=0.5 if historical else max(0.1, p.reconnect_timeout),
            maximum=max(30.0, p.reconnect_timeout),
            attempts=limit,
        )
        retry = 0
        try:
            while True:
                try:
                    client.authenticate()
                    break
                except (ConfigError, AuthenticationError):
                    raise  # a person must log in, or fix the settings
                except MarketError as exc:
                    retry += 1
                    if not backoff.allows(retry):
                        raise
                    wait = backoff.delay(retry)
                    if retry == 1:
                        self._broadcast(
                            f"cannot reach the gateway at {p.gateway_url} ({exc}); trying again "
                            + ("until it answers" if limit < 0 else f"{limit} time(s)")
                            + f", at most {backoff.maximum:g} s apart"
                        )
                    if self.clock.wait(wait, token):
                        token.raise_if_cancelled("connecting to the gateway")
            if retry:
                self._broadcast(f"the gateway at {p.gateway_url} answers again")
            if not connection.replaying:  # a replay has no session to keep alive
                client.start()
        except BaseException:
            connection.close()
            raise
        return connection

    def poller(self) -> SnapshotPoller:
        """The snapshot poller shared by this store's live feeds (needs :meth:`connect`)."""
        client = self.connect()
        with self._lock:
            if self._poller is None:
                self._poller = SnapshotPoller(
                    client.api,
                    interval=self.p.poll_interval,
                    clock=self.clock,
                    cancel=self._token,
                )
            return self._poller

    def market_source(self) -> MarketSource:
        """Where this store's live feeds get market data (``streaming``): the WebSocket with
        polling as the fallback, or the poller alone (needs :meth:`connect`)."""
        self.connect()
        mode = self.p.streaming
        if mode == "poll" or self._polls_only():
            return self.poller()
        socket = self.socket()
        assert socket is not None
        with self._lock:
            if self._source is None:
                self._source = StreamingSource(
                    socket, self.poller, mode=mode, notify=self._broadcast
                )
            return self._source

    def socket(self) -> GatewaySocket | None:
        """The store's one WebSocket (feeds and broker share it; started by its first
        subscriber), or None with ``streaming="poll"`` or a cassette (needs :meth:`connect`)."""
        client = self.connect()
        if self.p.streaming == "poll" or self._polls_only():
            return None
        with self._lock:
            if self._socket is None:
                self._socket = GatewaySocket(
                    client.api, cancel=self._token, **self.websocket_options
                )
            return self._socket

    @property
    def market_path(self) -> str | None:
        """Where live market data comes from now: ``"websocket"``, ``"poll"``, ``"none"``
        (``streaming="websocket"`` and the gateway serves none), or None (no live feed has
        started)."""
        with self._lock:
            source, poller = self._source, self._poller
        if source is not None:
            return source.path
        return "poll" if poller is not None else None

    def _polls_only(self) -> bool:
        """A cassette records and replays HTTP only: such a run polls."""
        return self.p.cassette is not None or self.replaying

    # -- notifications --------------------------------------------------------------------

    def put_notification(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Queue ``msg`` for the calling thread's run (every run when the caller is none
        of them) and log it. backtrader delivers no notifications in its vectorized
        ``runonce`` mode (historical data): errors that stop a historical feed are raised
        out of ``cerebro.run()`` instead."""
        log.info("%s", msg)
        with self._lock:
            run = self._runs.get(threading.get_ident())
            runs = [run] if run is not None else list(self._runs.values())
        for target in runs:
            target.put(msg, *args, **kwargs)

    def run_notifier(self) -> Any:
        """A ``notify(message)`` that queues for the calling thread's run (or, when the
        caller has none, every run), usable from other threads later."""
        with self._lock:
            run = self._runs.get(threading.get_ident())
        if run is None:
            return self._broadcast

        def notify(message: str) -> None:
            log.info("%s", message)
            run.put(message)

        return notify

    def _broadcast(self, message: str) -> None:
        log.info("%s", message)
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.put(message)

    def get_notifications(self) -> list[Any]:
        """The calling run's messages (Cerebro drains them every cycle)."""
        with self._lock:
            run = self._runs.get(threading.get_ident())
        if run is None:
            return []
        out = []
        while run.messages:
            out.append(run.messages.popleft())
        return out

    def _on_client_event(self, event: ClientEvent) -> None:
        """Client events as store messages, one per change of state (HTTP retries are
        logged, not notified; an outage is reported once by each feed)."""
        kind = event.kind
        if kind == "request":
            details = event.details
            if details.get("path") == "/tickle" and details.get("status") == 200:
                self._keepalive_failing = False
            return
        if kind == "keepalive_failed":
            if self._keepalive_failing:
                return
            self._keepalive_failing = True
        if kind in ("rate_limited", "reauthenticated", "session_lost", "keepalive_failed"):
            self._broadcast(event.message)

    def _on_invalid_bar(self, invalid: InvalidBar) -> None:
        self._broadcast(
            f"dropped an invalid bar from the gateway: {invalid.bar.describe()} ({invalid.reason})"
        )
