"""``GatewaySocket`` against the simulator's WebSocket, over real sockets on loopback.

The simulated market is frozen (``speed=0``) and moved with ``sim.advance``; the socket's own
intervals (echo, tic, silence, refresh, back-off) run on a ``FakeClock`` the test moves.
Every wait is for an event (a snapshot, a state, a server counter), bounded by a timeout that
only fails the test.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from backtrader_ibkr_cp.client import ws_link
from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.tls import TlsPolicy
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.client.websocket import GatewaySocket
from backtrader_ibkr_cp.client.ws_connect import open_websocket
from backtrader_ibkr_cp.client.ws_events import SocketEvent, SocketState
from backtrader_ibkr_cp.errors import (
    AuthenticationError,
    DataUnavailable,
    GatewayConnectionError,
    MarketError,
    RequestTimeout,
    TlsError,
    WebSocketUnavailable,
)
from backtrader_ibkr_cp.models import Snapshot
from backtrader_ibkr_cp.simulator import GatewaySimulator, SimStats
from backtrader_ibkr_cp.timing import Backoff, FakeClock
from tests.client.scripted_server import Reply, Scripted

#: Tuesday 2024-03-05 13:00 New York: the simulated market is open.
MARKET_OPEN = datetime(2024, 3, 5, 18, 0, tzinfo=timezone.utc)
AAPL = 265598
TEN = [265598, 8314, 272093, 3691937, 208813719, 107113386, 76792991, 4815747, 756733, 320227571]
WAIT = 10.0  # seconds a test waits for an event before it fails
NOW = Backoff(initial=0.0, jitter=0.0)  # reconnect at once
FAR = 10_000.0  # an interval the test never reaches


class Recorder:
    """A market listener that queues what it gets."""

    def __init__(self) -> None:
        self.items: queue.Queue[Snapshot | MarketError] = queue.Queue()

    def on_snapshot(self, snapshot: Snapshot) -> None:
        self.items.put(snapshot)

    def on_error(self, error: MarketError) -> None:
        self.items.put(error)

    def snapshot(self) -> Snapshot:
        """The next snapshot (errors before it are skipped)."""
        deadline = time.monotonic() + WAIT
        while True:
            item = self.items.get(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(item, Snapshot):
                return item

    def error(self) -> MarketError:
        """The next error (snapshots before it are skipped)."""
        deadline = time.monotonic() + WAIT
        while True:
            item = self.items.get(timeout=max(0.0, deadline - time.monotonic()))
            if isinstance(item, MarketError):
                return item


class States:
    """A state listener that queues the events."""

    def __init__(self) -> None:
        self.events: queue.Queue[SocketEvent] = queue.Queue()
        self.seen: list[SocketEvent] = []

    def __call__(self, event: SocketEvent) -> None:
        self.events.put(event)

    def until(self, state: SocketState) -> SocketEvent:
        """The next event with ``state`` (others are recorded in ``seen``)."""
        deadline = time.monotonic() + WAIT
        while True:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            self.seen.append(event)
            if event.state is state:
                return event


def counted(sim: GatewaySimulator, condition: Callable[[SimStats], bool]) -> None:
    """Wait until the simulator's counters satisfy ``condition`` (a message is counted once
    it is sent)."""
    assert sim.stats.wait_for(condition, timeout=WAIT), "the simulator's counters never did"


@pytest.fixture
def wsim(no_thread_leak: None) -> Iterator[GatewaySimulator]:
    """HTTPS, market open, frozen clock; heartbeats out of the way."""
    with GatewaySimulator(seed=0, speed=0, start=MARKET_OPEN, ws_heartbeat=FAR) as sim:
        yield sim


@pytest.fixture
def api_for(no_thread_leak: None) -> Iterator[Callable[..., ApiClient]]:
    transports: list[Transport] = []

    def make(sim: GatewaySimulator | Scripted, **kwargs: Any) -> ApiClient:
        kwargs.setdefault("retry", RetryPolicy(backoff_factor=0.01, jitter=0.0))
        kwargs.setdefault("timeout", (5.0, 5.0))
        transports.append(Transport(sim.url, **kwargs))
        return ApiClient(transports[-1])

    yield make
    for transport in transports:
        transport.close()


@pytest.fixture
def socket_for(no_thread_leak: None) -> Iterator[Callable[..., GatewaySocket]]:
    """Sockets closed at teardown. Every fixture here asks for ``no_thread_leak`` first, so
    it checks, after everything else is torn down, that no thread is left."""
    sockets: list[GatewaySocket] = []

    def make(api: ApiClient, **kwargs: Any) -> GatewaySocket:
        kwargs.setdefault("backoff", NOW)
        sockets.append(GatewaySocket(api, **kwargs))
        return sockets[-1]

    yield make
    for socket in sockets:
        socket.close()


def rest(api: ApiClient, conid: int) -> Snapshot:
    """What ``ApiClient.snapshot`` returns now (past the pre-flight)."""
    return api.snapshot_ready([conid])[0]


# -- market data ----------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [True, False], ids=["wss", "ws"])
def test_snapshots_equal_what_the_snapshot_endpoint_returns(
    tls: bool, api_for: Callable[..., ApiClient], socket_for: Callable[..., GatewaySocket]
) -> None:
    with GatewaySimulator(seed=0, speed=0, start=MARKET_OPEN, tls=tls, ws_heartbeat=FAR) as sim:
        api = api_for(sim)
        socket, listener = socket_for(api), Recorder()
        socket.subscribe(AAPL, listener)
        first = listener.snapshot()
        assert first == rest(api, AAPL)
        assert first.last is not None and first.volume is not None and first.symbol == "AAPL"
        for _ in range(5):
            sim.advance(7)
            merged = listener.snapshot()  # built from a message with only the changed fields
            assert merged == api.snapshot([AAPL])[0]
            assert merged.symbol == "AAPL" and merged.prior_close == first.prior_close
            assert merged.timestamp == sim.now()
        assert sim.stats.ws_connections == 1
        socket.close()
        assert socket.state is SocketState.CLOSED


def test_ten_conids_share_one_socket(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    api = api_for(wsim)
    socket = socket_for(api)
    listeners = {conid: Recorder() for conid in TEN}
    for conid, listener in listeners.items():
        socket.subscribe(conid, listener)
    expected = dict(zip(TEN, api.snapshot_ready(TEN), strict=True))
    for conid, listener in listeners.items():
        assert listener.snapshot() == expected[conid]
    wsim.advance(11)
    expected = {s.conid: s for s in api.snapshot(TEN)}
    for conid, listener in listeners.items():
        assert listener.snapshot() == expected[conid]
    assert wsim.stats.ws_connections == 1
    assert socket.conids == TEN


def test_unknown_conid_is_reported_to_its_listener(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    socket, listener = socket_for(api_for(wsim)), Recorder()
    socket.subscribe(999_999_999, listener)
    error = listener.error()
    assert isinstance(error, DataUnavailable) and error.context["conid"] == 999_999_999
    assert "999999999" in str(error)


# -- connection loss --------------------------------------------------------------------------


def test_a_dropped_socket_reconnects_and_resubscribes(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    api = api_for(wsim)
    socket, listener, states = socket_for(api), Recorder(), States()
    socket.add_state_listener(states)
    socket.subscribe(AAPL, listener)
    states.until(SocketState.CONNECTED)
    listener.snapshot()
    assert wsim.drop_websockets() == 1
    lost = states.until(SocketState.LOST)
    assert isinstance(lost.error, GatewayConnectionError) and lost.retry_in == 0.0
    assert isinstance(listener.error(), GatewayConnectionError)
    states.until(SocketState.CONNECTED)
    assert [e.state for e in states.seen] == [
        SocketState.CONNECTING,
        SocketState.CONNECTED,
        SocketState.LOST,
        SocketState.RECONNECTING,
        SocketState.CONNECTED,
    ]
    assert listener.snapshot() == rest(api, AAPL)  # resubscribed: a full first message
    wsim.advance(9)
    assert listener.snapshot() == api.snapshot([AAPL])[0]
    assert wsim.stats.ws_connections == 2 and socket.connections == 2


def test_a_silent_socket_is_detected_and_replaced(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    clock = FakeClock()
    api = api_for(wsim)
    socket = socket_for(
        api, clock=clock, heartbeat_interval=10, tic_interval=FAR, silence_timeout=30
    )
    listener, states = Recorder(), States()
    socket.add_state_listener(states)
    socket.subscribe(AAPL, listener)
    states.until(SocketState.CONNECTED)
    listener.snapshot()
    assert wsim.silence_websockets() == 1
    clock.advance(10)  # an echo goes out; the silenced socket swallows the answer
    counted(wsim, lambda s: s.ws_swallowed == 1)  # the echo, swallowed
    assert socket.state is SocketState.CONNECTED
    clock.advance(20)  # 30 s without a message
    lost = states.until(SocketState.LOST)
    assert isinstance(lost.error, RequestTimeout) and "no message" in str(lost.error)
    states.until(SocketState.CONNECTED)
    assert listener.snapshot() == rest(api, AAPL)
    assert wsim.stats.ws_connections == 2


def test_echo_and_tic_go_out_on_schedule(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    clock = FakeClock()
    socket = socket_for(
        api_for(wsim), clock=clock, heartbeat_interval=20, tic_interval=60, silence_timeout=None
    )
    states = States()
    socket.add_state_listener(states)
    socket.start()
    states.until(SocketState.CONNECTED)
    for step in range(1, 4):
        clock.advance(20)
        counted(wsim, lambda s, n=step: s.ws_messages["ech"] == n)
    counted(wsim, lambda s: s.ws_messages["tic"] == 1)
    assert wsim.stats.ws_connections == 1


def test_subscriptions_are_refreshed_before_the_gateway_ends_them(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    clock = FakeClock()
    api = api_for(wsim)
    socket = socket_for(
        api, clock=clock, refresh_interval=300, heartbeat_interval=FAR, silence_timeout=None
    )
    listener = Recorder()
    socket.subscribe(AAPL, listener)
    listener.snapshot()
    counted(wsim, lambda s: s.ws_messages["smd"] == 1)
    wsim.age_websocket_subscriptions(600)
    clock.advance(300)  # the refresh: the gateway answers with a full message
    counted(wsim, lambda s: s.ws_messages["smd"] == 2)
    listener.snapshot()
    wsim.age_websocket_subscriptions(600)  # 1200 s since the first smd, 600 since the refresh
    wsim.advance(5)
    assert listener.snapshot() == rest(api, AAPL)


def test_without_refresh_the_gateway_ends_the_subscription(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    clock = FakeClock()
    socket = socket_for(
        api_for(wsim), clock=clock, refresh_interval=None, heartbeat_interval=10, tic_interval=FAR
    )
    listener = Recorder()
    socket.subscribe(AAPL, listener)
    listener.snapshot()
    wsim.age_websocket_subscriptions(900)
    wsim.advance(5)  # nothing is queued for AAPL any more
    clock.advance(10)  # an echo: everything queued before its answer is sent before it
    counted(wsim, lambda s: s.ws_messages["ech"] == 1)
    assert wsim.stats.ws_messages["smd"] == 1  # the first message only


# -- the session ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["competing", "expired"])
def test_session_loss_is_reported_and_the_socket_resubscribes_when_it_is_back(
    how: str,
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    api = api_for(wsim)
    socket, listener, states = socket_for(api), Recorder(), States()
    socket.add_state_listener(states)
    socket.subscribe(AAPL, listener)
    states.until(SocketState.CONNECTED)
    listener.snapshot()
    wsim.compete() if how == "competing" else wsim.expire_session()
    lost = states.until(SocketState.LOST)
    assert isinstance(lost.error, AuthenticationError) and lost.retry_in is None
    assert ("another login" in str(lost.error)) == (how == "competing")
    assert isinstance(listener.error(), AuthenticationError)
    api.init_brokerage_session(compete=True)
    states.until(SocketState.CONNECTED)
    assert listener.snapshot() == rest(api, AAPL)
    wsim.advance(3)
    assert listener.snapshot() == api.snapshot([AAPL])[0]
    assert wsim.stats.ws_connections == 1  # the same socket throughout


def test_subscriptions_go_out_from_one_thread_so_a_queued_change_cannot_overtake_them(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a log-in or a new brokerage session, every subscription is sent again. The
    reader thread used to send that set while the keeper sent queued changes: an ``umd``
    queued by a feed leaving (just before it came back with an ``smd``) could reach the
    gateway after the full set and leave the conid unsubscribed, the client none the wiser
    until the feed's stall timeout. Every subscription command now goes out from the keeper."""
    senders: list[tuple[str, str]] = []
    real_send = ws_link.send

    def recording(connection: Any, commands: list[str]) -> None:
        senders.extend((threading.current_thread().name, command) for command in commands)
        real_send(connection, commands)

    monkeypatch.setattr(ws_link, "send", recording)
    api = api_for(wsim)
    socket, listener, states = socket_for(api), Recorder(), States()
    socket.add_state_listener(states)
    socket.subscribe(AAPL, listener)
    states.until(SocketState.CONNECTED)  # a log-in
    listener.snapshot()
    wsim.expire_session()
    states.until(SocketState.LOST)
    api.init_brokerage_session(compete=True)
    states.until(SocketState.CONNECTED)  # a new brokerage session
    assert listener.snapshot() == rest(api, AAPL)

    subscriptions = [(name, c) for name, c in senders if c.startswith(("smd", "umd"))]
    assert len(subscriptions) >= 2, senders
    assert {name for name, _ in subscriptions} == {"ibkr-cp-websocket-keeper"}, subscriptions


def test_a_refused_log_in_is_retried_after_the_back_off(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    clock = FakeClock()
    api = api_for(wsim)
    wsim.expire_session()
    socket = socket_for(api, clock=clock, backoff=Backoff(initial=5.0, jitter=0.0))
    listener, states = Recorder(), States()
    socket.add_state_listener(states)
    socket.subscribe(AAPL, listener)
    lost = states.until(SocketState.LOST)
    assert isinstance(lost.error, AuthenticationError) and lost.retry_in == 5.0
    assert "ssodh/init" in str(lost.error)
    api.init_brokerage_session(compete=True)
    clock.wait_for_sleepers(2)  # the keeper, and the reader's back-off
    clock.advance(5)
    states.until(SocketState.CONNECTED)
    assert listener.snapshot() == rest(api, AAPL)


# -- orders and trades ------------------------------------------------------------------------


def test_order_and_trade_messages_reach_their_listeners(
    api_for: Callable[..., ApiClient], socket_for: Callable[..., GatewaySocket]
) -> None:
    with GatewaySimulator(seed=0, speed=0, start=MARKET_OPEN, ws_heartbeat=FAR) as sim:
        socket = socket_for(api_for(sim))
        orders: queue.Queue[Mapping[str, Any]] = queue.Queue()
        trades: queue.Queue[Mapping[str, Any]] = queue.Queue()
        socket.add_order_listener(lambda items: [orders.put(item) for item in items])
        socket.add_trade_listener(lambda items: [trades.put(item) for item in items])
        states = States()
        socket.add_state_listener(states)
        states.until(SocketState.CONNECTED)
        with requests.Session() as http:
            base = sim.api_url
            assert http.get(base + "/iserver/accounts", verify=sim.cert_path, timeout=5).ok
            ticket = {"conid": AAPL, "side": "BUY", "quantity": 10, "orderType": "MKT",
                      "tif": "DAY", "cOID": "ws-client-1"}  # fmt: skip
            answer = http.post(
                base + "/iserver/account/DU0000000/orders",
                json={"orders": [ticket]},
                verify=sim.cert_path,
                timeout=5,
            ).json()
            while isinstance(answer, list) and answer and "id" in answer[0]:
                answer = http.post(
                    base + f"/iserver/reply/{answer[0]['id']}",
                    json={"confirmed": True},
                    verify=sim.cert_path,
                    timeout=5,
                ).json()
        order_id = int(answer[0]["order_id"])
        sim.advance(1)
        first = orders.get(timeout=WAIT)
        assert first["orderId"] == order_id and first["order_ref"] == "ws-client-1"
        status = first.get("status")
        while status != "Filled":
            status = orders.get(timeout=WAIT).get("status", status)
        filled = 0.0
        while filled < 10:
            trade = trades.get(timeout=WAIT)
            assert trade["order_ref"] == "ws-client-1"
            filled += float(trade["size"])
        assert filled == 10
        socket.close()


# -- connecting -------------------------------------------------------------------------------


@pytest.mark.parametrize("verify", ["fingerprint", "bundle"])
def test_tls_follows_the_client_policy(
    verify: str,
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    setting = wsim.cert_fingerprint if verify == "fingerprint" else wsim.cert_path
    socket, states = socket_for(api_for(wsim, verify=setting)), States()
    socket.add_state_listener(states)
    socket.start()
    states.until(SocketState.CONNECTED)


@pytest.mark.parametrize("verify", ["wrong-pin", "system-cas"])
def test_the_socket_refuses_a_certificate_the_policy_does_not_trust(
    verify: str, wsim: GatewaySimulator
) -> None:
    setting: str | bool = "sha256:" + "AB" * 32 if verify == "wrong-pin" else True
    policy = TlsPolicy.build(setting, wsim.url)
    with pytest.raises(TlsError) as caught:
        open_websocket(policy, "api=0", timeout=5.0, close_timeout=1.0)
    if verify == "wrong-pin":
        assert f"presented {wsim.cert_fingerprint}" in str(caught.value)
    else:
        assert "verification failed" in str(caught.value) and "verify=" in str(caught.value)
    assert wsim.stats.ws_connections == 0


@pytest.mark.parametrize("form", ["json", "plain"])
def test_both_cookie_forms(
    form: str,
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    socket, states = socket_for(api_for(wsim), cookie_form=form), States()
    socket.add_state_listener(states)
    socket.start()
    states.until(SocketState.CONNECTED)


def test_a_gateway_without_a_websocket_is_unsupported(
    api_for: Callable[..., ApiClient], socket_for: Callable[..., GatewaySocket]
) -> None:
    with Scripted() as gateway:
        gateway.on("/tickle", Reply(body=b'{"session": "0123456789abcdef0123456789abcdef"}'))
        gateway.on("/ws", Reply(404, b"<html>Not Found</html>", "text/html"))
        socket, states, listener = socket_for(api_for(gateway)), States(), Recorder()
        socket.add_state_listener(states)
        socket.subscribe(AAPL, listener)
        event = states.until(SocketState.UNSUPPORTED)
        assert isinstance(event.error, WebSocketUnavailable) and event.error.status == 404
        assert "streaming='poll'" in str(event.error)
        assert isinstance(listener.error(), WebSocketUnavailable)
        assert socket.join(WAIT)  # UNSUPPORTED ends both threads on its own


def test_close_is_prompt_and_leaves_nothing_behind(
    wsim: GatewaySimulator,
    api_for: Callable[..., ApiClient],
    socket_for: Callable[..., GatewaySocket],
) -> None:
    clock = FakeClock()
    api = api_for(wsim)
    socket = socket_for(api, clock=clock)
    states, listener = States(), Recorder()
    socket.add_state_listener(states)
    socket.subscribe(AAPL, listener)
    listener.snapshot()
    socket.close()
    assert states.until(SocketState.CLOSED)
    assert not socket.running
    assert wsim.stats.ws_connections == 1
    socket.close()  # idempotent
    # closing while it waits out a back-off
    wsim.expire_session()
    waiting = socket_for(api, clock=clock, backoff=Backoff(initial=3600.0))
    states = States()
    waiting.add_state_listener(states)
    waiting.start()
    states.until(SocketState.LOST)
    waiting.close()
    assert not waiting.running
