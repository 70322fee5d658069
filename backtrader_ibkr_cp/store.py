"""``IBKRCPStore``: backtrader's Store for an IBKR Client Portal Gateway.

One store per gateway configuration: ``IBKRCPStore(gateway_url=...)`` returns the same store
for the same parameters and a different one for different parameters (backtrader's own
stores are process-wide singletons, which makes two gateways, or two test runs, share state).
``IBKRCPStore._reset()`` stops and forgets every store (for tests).

Threading model: the store owns one :class:`~backtrader_ibkr_cp.gateway.GatewayClient` (with
its keep-alive thread) and one :class:`~backtrader_ibkr_cp.live.poller.SnapshotPoller` thread
shared by all its live feeds; each live feed adds one stream thread. All of them are created
when the first feed starts and stopped and joined in :meth:`IBKRCPStore.stop`, which Cerebro
calls at the end of ``run()``.

Store messages (strings) reach ``Strategy.notify_store``: client events (retries, rate
limits, re-authentication, keep-alive failures), dropped invalid bars, reconnections, and
errors that stop a feed.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import backtrader as bt

from .errors import ConfigError, MarketError
from .models import InvalidBar

if TYPE_CHECKING:
    from .cassettes import Cassette
    from .cassettes.replay import ReplayAdapter
    from .client.transport import ClientEvent
    from .gateway import GatewayClient
    from .live.poller import SnapshotPoller
    from .live.stream import LiveStream

__all__ = ["IBKRCPStore"]

log = logging.getLogger(__name__)

#: Client event kinds that become store messages (``request`` is too chatty).
_NOTIFIED_EVENTS = frozenset(
    {"retry", "rate_limited", "reauthenticated", "session_lost", "keepalive_failed"}
)


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


class IBKRCPStore(bt.Store, metaclass=MetaIBKRCPStore):  # type: ignore[misc]
    """backtrader Store for the IBKR Client Portal Gateway.

    Params:
        gateway_url (``"https://localhost:5000"``): the gateway (``/v1/api`` optional).
        verify (None): TLS verification: None (loopback gateways unverified, others
            verified), True, False, a CA bundle path, or ``"sha256:AA:BB:..."`` pinning the
            gateway certificate's fingerprint.
        timeout (10.0): seconds per HTTP request.
        reconnect (3): reconnection attempts after a lost connection (-1 forever, 0 none);
            also the attempts to reach the gateway when the first feed starts.
        reconnect_timeout (5.0): seconds between reconnection attempts.
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
    """

    params = (
        ("gateway_url", "https://localhost:5000"),
        ("verify", None),
        ("timeout", 10.0),
        ("reconnect", 3),
        ("reconnect_timeout", 5.0),
        ("poll_interval", 1.0),
        ("history_concurrency", 4),
        ("strict", False),
        ("cache_dir", None),
        ("stall_timeout", 30.0),
        ("cassette", None),
        ("record_mode", None),
    )

    _started: bool = False
    BrokerCls = bt.brokers.BackBroker
    DataCls: Any = None  # set by IBKRCPData's metaclass

    def __init__(self, **kwargs: Any) -> None:
        # backtrader's metaclass has already consumed the params (``self.p``); ``kwargs``
        # is empty and only declared so that type checkers accept IBKRCPStore(param=...).
        self.notifs: collections.deque[Any] = collections.deque()
        self.datas: list[Any] = []
        self.broker: Any = None
        self._lock = threading.RLock()
        self._client: GatewayClient | None = None
        self._poller: SnapshotPoller | None = None
        self._streams: list[LiveStream] = []
        self._cassette: Cassette | None = None
        self._replay: ReplayAdapter | None = None
        self._connect_error: MarketError | None = None
        self._validate()

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

    # -- backtrader factories -----------------------------------------------------------

    def getdata(self, *args: Any, **kwargs: Any) -> Any:
        """An :class:`~backtrader_ibkr_cp.feed.IBKRCPData` bound to this store."""
        if self.DataCls is None:
            from . import feed  # noqa: F401  (registers IBKRCPData as DataCls)
        return self.DataCls(*args, _store=self, **kwargs)

    @classmethod
    def getbroker(cls, *args: Any, **kwargs: Any) -> Any:
        """backtrader's simulated ``BackBroker`` (orders are not sent to IBKR yet)."""
        return cls.BrokerCls(*args, **kwargs)

    @classmethod
    def _reset(cls) -> None:
        """Stop every store and forget them (tests; a new process state)."""
        with cls._instances_lock:
            stores = list(cls._instances.values())
            cls._instances.clear()
        for store in stores:
            store.stop()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, data: Any = None, broker: Any = None) -> None:
        """Called by Cerebro (no arguments) and by each feed (``data=``)."""
        with self._lock:
            if not self._started:
                self._started = True
                self.datas = []
                self.broker = None
                self._connect_error = None
            if data is not None:
                self._cerebro = self._env = data._env
                if not any(d is data for d in self.datas):
                    self.datas.append(data)
            elif broker is not None:
                self.broker = broker

    def stop(self) -> None:
        """Stop the feeds' streams, the poller and the keep-alive, close the client, and
        join every thread (closing the client first ends any wait in flight)."""
        with self._lock:
            poller, self._poller = self._poller, None
            client, self._client = self._client, None
            streams, self._streams = self._streams, []
            self._started = False
        for stream in streams:
            stream.stop(timeout=0)
        if poller is not None:
            poller.stop(timeout=0)
        if client is not None:
            client.close()
            self._stop_cassette()
        for stream in streams:
            stream.stop()
        if poller is not None:
            poller.stop()

    def add_stream(self, stream: LiveStream) -> None:
        """Let :meth:`stop` stop and join a feed's stream."""
        with self._lock:
            self._streams.append(stream)

    # -- resources for the feeds ----------------------------------------------------------

    def _make_client(self) -> GatewayClient:
        """Build this store's GatewayClient: the one place a client is made. With
        ``cassette=``, the cassette is installed first (recording, or replaying with no
        network and no pacing waits)."""
        from .cassettes import translate_cassette_error
        from .cassettes.replay import replay_session
        from .cassettes.wiring import as_cassette, replay_pacing_limits
        from .client.pacing import PacingLimits
        from .gateway import GatewayClient

        cassette = as_cassette(self.p.cassette, self.p.record_mode)
        pacing = PacingLimits(history_concurrency=self.p.history_concurrency)
        session = None
        if cassette is not None and cassette.replays_stored_file():
            # Replay: the stored answers are served by an adapter on the client's own session
            # (no vcrpy patching, no re-scrubbing, no pacing waits: nothing reaches IBKR).
            session, self._replay = replay_session(cassette.path)
            pacing = replay_pacing_limits()
        elif cassette is not None:
            self._cassette = cassette
            cassette.start()  # record: before the client sends anything
        client = GatewayClient(
            self.p.gateway_url,
            verify=self.p.verify,
            timeout=self.p.timeout,
            pacing=pacing,
            session=session,
            cache_dir=self.p.cache_dir,
            strict=self.p.strict,
            on_invalid_bar=self._on_invalid_bar,
        )
        if self._cassette is not None:
            client.transport.add_error_mapper(translate_cassette_error)
        return client

    @property
    def replaying(self) -> bool:
        """True while a cassette replays (no gateway, no session to keep alive)."""
        if self._replay is not None:
            return True
        return self._cassette is not None and not self._cassette.recording

    def connect(self) -> GatewayClient:
        """The connected GatewayClient (authenticated, keep-alive running), built on first
        use; tries ``reconnect`` more times ``reconnect_timeout`` seconds apart. Raises the
        last MarketError (and keeps raising it for this run without retrying)."""
        with self._lock:
            if self._client is not None:
                return self._client
            if self._connect_error is not None:
                raise self._connect_error
            client = self._make_client()
            client.add_listener(self._on_client_event)
            attempt = 0
            while True:
                attempt += 1
                try:
                    client.authenticate()
                    break
                except ConfigError:
                    self._discard(client)
                    raise
                except MarketError as exc:
                    limit = self.p.reconnect
                    if limit >= 0 and attempt > limit:
                        self._discard(client)
                        self._connect_error = exc
                        raise
                    self.put_notification(
                        f"cannot reach the gateway at {self.p.gateway_url} ({exc}); attempt "
                        f"{attempt}, retrying in {self.p.reconnect_timeout:g} s"
                    )
                    time.sleep(self.p.reconnect_timeout)
            if not self.replaying:  # a replay has no session to keep alive
                client.start()
            self._client = client
            return client

    def _discard(self, client: GatewayClient) -> None:
        client.close()
        self._stop_cassette()

    def _stop_cassette(self) -> None:
        self._replay = None
        cassette, self._cassette = self._cassette, None
        if cassette is not None:
            cassette.stop()  # writes the file when recording

    @property
    def client(self) -> GatewayClient | None:
        """The GatewayClient, or None before the first feed connected."""
        return self._client

    def poller(self) -> SnapshotPoller:
        """The snapshot poller shared by this store's live feeds (needs :meth:`connect`)."""
        from .live.poller import SnapshotPoller

        with self._lock:
            if self._poller is None:
                client = self.connect()
                self._poller = SnapshotPoller(client.api, interval=self.p.poll_interval)
            return self._poller

    # -- notifications --------------------------------------------------------------------

    def put_notification(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Queue ``msg`` for ``Strategy.notify_store`` and log it (backtrader delivers no
        notifications in its vectorized ``runonce`` mode, used for historical data)."""
        log.info("%s", msg)
        self.notifs.append((msg, args, kwargs))

    def _on_client_event(self, event: ClientEvent) -> None:
        if event.kind in _NOTIFIED_EVENTS:
            self.put_notification(event.message)

    def _on_invalid_bar(self, invalid: InvalidBar) -> None:
        self.put_notification(
            f"dropped an invalid bar from the gateway: {invalid.bar.describe()} ({invalid.reason})"
        )
