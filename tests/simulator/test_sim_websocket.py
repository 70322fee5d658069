"""The simulator's WebSocket ``/v1/api/ws``, driven by ``websockets``' own client over loopback.

Every wait is for a message or a counter (bounded by a timeout that only fails the test);
absence is proven with the echo: the server queues an answer behind everything it queued
before, and ``sim.advance`` queues every market update due before it returns.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.simulator.sim_trading import RELAXED, Trader
from tests.support.instants import TUESDAY_MORNING

AAPL = 265598
IBM = 8314
FIELDS = ["31", "55", "70", "71", "84", "85", "86", "87", "88", "7059", "7295", "7741", "7762"]
#: Keys a snapshot entry and a first smd message both carry besides the fields.
IDS = {"conid", "conidEx", "server_id", "6119", "_updated", "6509"}
QUIET = 3600.0  # a heartbeat interval no test waits for


_TOKENS: weakref.WeakKeyDictionary[GatewaySimulator, str] = weakref.WeakKeyDictionary()


def token(sim: GatewaySimulator) -> str:
    """The session of ``POST /tickle`` (asked once per simulator: tickle is paced 1/s)."""
    if sim not in _TOKENS:
        verify: str | bool = sim.cert_path if sim.url.startswith("https") else False
        body = requests.post(sim.api_url + "/tickle", verify=verify, timeout=5).json()
        _TOKENS[sim] = str(body["session"])
    return _TOKENS[sim]


def open_socket(
    sim: GatewaySimulator, stack: contextlib.ExitStack, cookie: str | None = "plain"
) -> ClientConnection:
    """A raw client socket, closed with ``stack``; ``cookie``: ``"plain"``
    (``api=<session>``), ``"json"`` (``api={"session": ...}``), None (no cookie) or a
    literal Cookie header."""
    headers: dict[str, str] = {}
    if cookie == "plain":
        headers["Cookie"] = f"api={token(sim)}"
    elif cookie == "json":
        headers["Cookie"] = "api=" + json.dumps({"session": token(sim)})
    elif cookie is not None:
        headers["Cookie"] = cookie
    secure = sim.url.startswith("https")
    context = ssl.create_default_context(cafile=sim.cert_path) if secure else None
    if context is not None:
        # websockets' own client reads on one thread while it sends on another; with TLS 1.3
        # the server's session tickets, read right after the handshake, race with the upgrade
        # request and about 2 connections in 1,000 hang (the package's client is guarded by
        # client/ws_tls.py). These tests are about the server side: their client speaks TLS
        # 1.2, which sends nothing after the handshake.
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    url = sim.url.replace("http", "ws", 1) + "/v1/api/ws"
    return stack.enter_context(
        connect(url, ssl=context, additional_headers=headers, open_timeout=5, proxy=None)
    )


class Socket:
    """A client socket with helpers that read JSON messages (raw text for the echo)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    def send(self, text: str) -> None:
        self.connection.send(text)

    def recv(self, timeout: float = 5.0) -> Any:
        raw = self.connection.recv(timeout=timeout)
        text = raw if isinstance(raw, str) else raw.decode()
        return text if text == "ech+hb" else json.loads(text)

    def next(self, match: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """The next message ``match`` accepts (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.0, deadline - time.monotonic()))
            if match(message):
                return message

    def sync(self) -> list[Any]:
        """Every message the server queued before this call (heartbeats left out)."""
        self.send("ech+hb")
        seen: list[Any] = []
        while (message := self.recv()) != "ech+hb":
            if not (isinstance(message, dict) and "hb" in message):
                seen.append(message)
        return seen

    def greeted(self) -> list[Any]:
        """The three messages a logged-in socket starts with."""
        return [self.recv(), self.recv(), self.recv()]

    def close(self) -> None:
        self.connection.close()


def topic(name: str) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, dict) and m.get("topic") == name


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Closes the test's client sockets at teardown."""
    with contextlib.ExitStack() as sockets:
        yield sockets


@pytest.fixture
def socket_for(stack: contextlib.ExitStack) -> Callable[..., Socket]:
    def make(sim: GatewaySimulator, cookie: str | None = "plain", greet: bool = True) -> Socket:
        client = Socket(open_socket(sim, stack, cookie))
        if greet:
            client.greeted()
        return client

    return make


@pytest.fixture
def wsim() -> Iterator[GatewaySimulator]:
    """HTTPS, frozen Tuesday morning, heartbeats out of the way."""
    with GatewaySimulator(seed=7, speed=0, start=TUESDAY_MORNING, ws_heartbeat=QUIET) as sim:
        yield sim


def rest_snapshot(client: Any, conid: int) -> dict[str, Any]:
    """The snapshot endpoint's entry for ``conid`` now (accounts and pre-flight first)."""
    client.get("/iserver/accounts")
    entry: dict[str, Any] = client.snapshot(str(conid), ",".join(FIELDS)).json()[0]
    if "31" not in entry:
        entry = client.snapshot(str(conid), ",".join(FIELDS)).json()[0]
    return entry


def smd(conid: int, fields: list[str] = FIELDS) -> str:
    return f"smd+{conid}+" + json.dumps({"fields": fields})


# -- connecting -----------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [True, False], ids=["wss", "ws"])
def test_connect_greets_with_system_sts_and_act(
    tls: bool, socket_for: Callable[..., Socket]
) -> None:
    with GatewaySimulator(seed=7, speed=0, start=TUESDAY_MORNING, tls=tls, paper=True) as sim:
        client = socket_for(sim, greet=False)
        system, sts, act = client.greeted()
        client.close()
        assert system == {"topic": "system", "success": "simuser1"}
        assert sts["topic"] == "sts" and sts["args"]["authenticated"] is True
        assert sts["args"]["competing"] is False
        assert act["topic"] == "act" and act["args"]["accounts"] == ["DU0000000"]
        assert act["args"]["isPaper"] is True
        assert sim.stats.ws_connections == 1
        assert sim.stats.requests["/ws"] == 1
        assert sim.stats.wait_for(lambda s: sum(s.ws_messages.values()) == 3, timeout=5)
        assert sim.stats.ws_messages == {"system": 1, "sts": 1, "act": 1}


@pytest.mark.parametrize("form", ["plain", "json"])
def test_both_cookie_forms_log_in(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket], form: str
) -> None:
    client = socket_for(wsim, form, greet=False)
    assert client.recv() == {"topic": "system", "success": "simuser1"}


def test_session_as_first_message(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket]
) -> None:
    client = socket_for(wsim, None, greet=False)
    assert client.recv() == {"message": "waiting for session"}
    client.send(json.dumps({"session": token(wsim)}))
    assert client.recv() == {"topic": "system", "success": "simuser1"}


@pytest.mark.parametrize(
    ("cookie", "first"),
    [
        ("api=0123456789abcdef0123456789abcdef", None),
        (None, "smd+265598+{}"),
        (None, json.dumps({"session": "wrong"})),
    ],
    ids=["wrong-cookie", "command-before-session", "wrong-session-message"],
)
def test_refused_without_a_valid_session(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket], cookie: str | None, first: str | None
) -> None:
    client = socket_for(wsim, cookie, greet=False)
    if first is not None:
        assert client.recv() == {"message": "waiting for session"}
        client.send(first)
    with pytest.raises(ConnectionClosedError) as caught:
        client.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1008
    assert "session" in caught.value.rcvd.reason and "/tickle" in caught.value.rcvd.reason


@pytest.mark.parametrize("how", ["expired", "competing"])
def test_refused_without_a_brokerage_session(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket], how: str
) -> None:
    secret = token(wsim)
    wsim.expire_session() if how == "expired" else wsim.compete()
    client = socket_for(wsim, f"api={secret}", greet=False)
    with pytest.raises(ConnectionClosedError) as caught:
        client.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1008
    assert "/iserver/auth/ssodh/init" in caught.value.rcvd.reason
    assert ("another login" in caught.value.rcvd.reason) == (how == "competing")


def test_the_upgrade_takes_faults(wsim: GatewaySimulator, stack: contextlib.ExitStack) -> None:
    wsim.inject("http_503", path="/ws")
    with pytest.raises(InvalidStatus) as caught:
        open_socket(wsim, stack)
    assert caught.value.response.status_code == 503
    assert wsim.stats.ws_connections == 0


def test_plain_get_without_upgrade_is_refused(wsim: GatewaySimulator) -> None:
    response = requests.get(wsim.api_url + "/ws", verify=wsim.cert_path, timeout=5)
    assert response.status_code == 426


# -- heartbeats, echo, tic ------------------------------------------------------------------


def test_heartbeats_carry_the_gateway_clock(socket_for: Callable[..., Socket]) -> None:
    with GatewaySimulator(seed=7, speed=0, start=TUESDAY_MORNING, ws_heartbeat=0.05) as sim:
        client = socket_for(sim)
        beats = [client.next(lambda m: "hb" in m) for _ in range(3)]
        client.close()
    stamp = int(TUESDAY_MORNING.timestamp() * 1000)
    assert beats == [{"topic": "system", "hb": stamp}] * 3
    # the greeting and three beats (a message is counted once sent: wait for the count)
    assert sim.stats.wait_for(lambda s: s.ws_messages["system"] >= 4, timeout=5)


def test_echo_and_tic(wsim: GatewaySimulator, socket_for: Callable[..., Socket]) -> None:
    client = socket_for(wsim)
    client.send("ech+hb")
    assert client.recv() == "ech+hb"
    client.send("tic")
    reply = client.recv()
    assert reply["topic"] == "tic" and reply["alive"] is True
    assert reply["lastAccessed"] == int(TUESDAY_MORNING.timestamp() * 1000)
    assert wsim.stats.wait_for(
        lambda s: s.ws_messages["ech"] == 1 and s.ws_messages["tic"] == 1, timeout=5
    )


# -- market data ----------------------------------------------------------------------------


@pytest.mark.parametrize("tls", [True, False], ids=["wss", "ws"])
def test_smd_first_message_then_deltas_match_the_snapshot_endpoint(
    tls: bool, client_for: Callable[[GatewaySimulator], Any], socket_for: Callable[..., Socket]
) -> None:
    with GatewaySimulator(
        seed=7, speed=0, start=TUESDAY_MORNING, tls=tls, ws_heartbeat=QUIET, limits=RELAXED
    ) as sim:
        rest = client_for(sim)
        client = socket_for(sim)
        client.send(smd(AAPL))
        first = client.recv()
        entry = rest_snapshot(rest, AAPL)
        assert first["topic"] == "smd+265598"
        assert {k: v for k, v in first.items() if k != "topic"} == entry
        assert set(first) == set(FIELDS) | IDS | {"topic"}

        state = dict(first)
        for step in range(1, 6):
            sim.advance(7)
            delta = client.recv()
            assert delta["topic"] == "smd+265598" and delta["conid"] == AAPL
            assert delta["_updated"] == int(sim.now().timestamp() * 1000)
            changed = set(delta) - {"conid", "_updated", "topic"}
            assert changed and changed <= set(FIELDS) | {"6509"}
            assert all(delta[code] != state.get(code) for code in changed), step
            state.update(delta)
            entry = rest_snapshot(rest, AAPL)
            assert {k: state[k] for k in entry if k not in ("server_id", "6119")} == {
                k: v for k, v in entry.items() if k not in ("server_id", "6119")
            }
        assert client.sync() == []  # a frozen clock pushes nothing more


def test_no_update_without_a_change_and_umd_stops_updates(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket]
) -> None:
    client = socket_for(wsim)
    client.send(smd(AAPL))
    client.send(smd(IBM, ["31", "84"]))
    assert {client.recv()["conid"], client.recv()["conid"]} == {AAPL, IBM}
    wsim.advance(0)
    assert client.sync() == []
    client.send(f"umd+{AAPL}+{{}}")
    client.sync()  # the unsubscription is done
    wsim.advance(30)
    assert [m["conid"] for m in client.sync()] == [IBM]


def test_fields_are_added_by_resending_smd(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket]
) -> None:
    client = socket_for(wsim)
    client.send(smd(AAPL, ["31"]))
    assert set(client.recv()) == {"31"} | IDS | {"topic"}
    client.send(smd(AAPL, ["84"]))
    assert set(client.recv()) == {"31", "84"} | IDS | {"topic"}


def test_unknown_conid_and_unsubscribed_data(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket]
) -> None:
    client = socket_for(wsim)
    client.send(smd(999999999))
    error = client.recv()
    assert error["topic"] == "smd+999999999" and "not a known contract" in error["error"]
    wsim.set_availability(IBM, "N")
    client.send(smd(IBM))
    first = client.recv()
    assert first["6509"] == "N" and "31" not in first and first["55"] == "IBM"


def test_a_field_that_goes_away_is_sent_empty(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket]
) -> None:
    client = socket_for(wsim)
    client.send(smd(AAPL, ["31", "70"]))
    assert "70" in client.recv()
    wsim.set_time(datetime(2024, 3, 6, 6, 0, tzinfo=timezone.utc))  # 01:00 New York: no trade
    delta = client.recv()
    assert delta["70"] == "" and delta["31"].startswith("C")


def test_subscription_lifetime_and_renewal(socket_for: Callable[..., Socket]) -> None:
    with GatewaySimulator(
        seed=7, speed=0, start=TUESDAY_MORNING, ws_heartbeat=QUIET, ws_subscription_lifetime=900
    ) as sim:
        client = socket_for(sim)
        client.send(smd(AAPL))
        client.recv()
        sim.age_websocket_subscriptions(899)
        sim.advance(5)
        assert [m["topic"] for m in client.sync()] == ["smd+265598"]
        sim.age_websocket_subscriptions(1)  # 900 s old: the server stops, silently
        sim.advance(5)
        assert client.sync() == []
        client.send(smd(AAPL))  # renewed: a full first message again
        assert set(client.recv()) == set(FIELDS) | IDS | {"topic"}
        sim.age_websocket_subscriptions(899)
        sim.advance(5)
        assert [m["topic"] for m in client.sync()] == ["smd+265598"]


# -- orders and trades ----------------------------------------------------------------------


def test_sor_and_str_push_an_order_placed_through_rest(
    socket_for: Callable[..., Socket],
) -> None:
    with GatewaySimulator(
        seed=7, speed=0, start=TUESDAY_MORNING, limits=RELAXED, ws_heartbeat=QUIET
    ) as sim:
        trader = Trader(sim)
        resting = trader.place_one(order_type="LMT", price=1.0, cOID="ws-rest-1")
        client = socket_for(sim)
        client.send("sor+{}")
        first = client.next(topic("sor"))
        assert [o["orderId"] for o in first["args"]] == [resting]
        assert first["args"][0]["order_ref"] == "ws-rest-1"
        client.send('str+{"days":1}')
        assert client.sync() == []  # no trades yet: no first str message

        filled = trader.place_one(quantity=10, cOID="ws-mkt-1")
        sim.advance(1)
        updates = [m for m in client.sync() if m["topic"] in ("sor", "str")]
        orders = [o for m in updates if m["topic"] == "sor" for o in m["args"]]
        trades = [t for m in updates if m["topic"] == "str" for t in m["args"]]
        assert orders[0]["orderId"] == filled and orders[0]["order_ref"] == "ws-mkt-1"
        assert orders[-1]["orderId"] == filled and orders[-1]["status"] == "Filled"
        assert sum(t["size"] for t in trades) == 10
        assert {t["order_ref"] for t in trades} == {"ws-mkt-1"}

        assert trader.cancel(resting).ok
        sim.advance(1)
        cancelled = [o for m in client.sync() if m["topic"] == "sor" for o in m["args"]]
        assert cancelled[-1]["orderId"] == resting and cancelled[-1]["status"] == "Cancelled"

        client.send("uor+{}")
        client.send("utr")
        client.sync()
        trader.place_one(quantity=5)
        sim.advance(1)
        assert client.sync() == []
        late = socket_for(sim)  # a new str subscription replays the day's trades
        late.send("str+{}")
        replay = late.next(topic("str"))
        assert sum(t["size"] for t in replay["args"]) == 15
        trader.close()


# -- the session ----------------------------------------------------------------------------


def test_sts_on_competing_login_and_recovery(
    wsim: GatewaySimulator,
    socket_for: Callable[..., Socket],
    client_for: Callable[[GatewaySimulator], Any],
) -> None:
    client = client_for(wsim)
    ws = socket_for(wsim)
    ws.send(smd(AAPL))
    ws.recv()
    wsim.compete()
    sts = ws.recv()
    assert sts["topic"] == "sts"
    assert sts["args"]["authenticated"] is False and sts["args"]["competing"] is True
    wsim.advance(10)
    assert ws.sync() == []  # no market data without a brokerage session
    client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    back = ws.next(topic("sts"))
    assert back["args"]["authenticated"] is True and back["args"]["competing"] is False
    wsim.advance(10)
    assert ws.sync() == []  # a new brokerage session starts without subscriptions
    ws.send(smd(AAPL))
    assert ws.recv()["topic"] == "smd+265598"


def test_sts_on_expiry_and_daily_reset(
    wsim: GatewaySimulator,
    socket_for: Callable[..., Socket],
    client_for: Callable[[GatewaySimulator], Any],
) -> None:
    client = client_for(wsim)
    ws = socket_for(wsim)
    wsim.expire_session()
    assert ws.recv()["args"]["authenticated"] is False
    client.post("/iserver/auth/ssodh/init", json={"publish": True, "compete": True})
    assert ws.next(topic("sts"))["args"]["authenticated"] is True
    wsim.inject("daily_reset", path="/iserver/accounts")
    assert client.get("/iserver/accounts").status_code == 401
    reset = ws.next(topic("sts"))
    assert reset["args"]["authenticated"] is False and reset["args"]["competing"] is False


# -- controls -------------------------------------------------------------------------------


def test_drop_websockets_cuts_every_socket(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket]
) -> None:
    first, second = socket_for(wsim), socket_for(wsim)
    assert wsim.drop_websockets() == 2
    for client in (first, second):
        with pytest.raises(ConnectionClosed) as caught:
            client.recv()
        assert caught.value.rcvd is None  # no close frame: a network cut
    again = socket_for(wsim)
    again.send("ech+hb")
    assert again.recv() == "ech+hb"
    assert wsim.stats.ws_connections == 3


def test_a_silenced_socket_stays_open_and_says_nothing(
    wsim: GatewaySimulator, socket_for: Callable[..., Socket]
) -> None:
    quiet = socket_for(wsim)
    quiet.send(smd(AAPL))
    quiet.recv()
    assert wsim.stats.wait_for(lambda s: s.ws_messages["smd"] == 1, timeout=5)
    assert wsim.silence_websockets() == 1
    sent = sum(wsim.stats.ws_messages.values())
    quiet.send("ech+hb")
    wsim.advance(5)
    # the echo and the market update, handled and swallowed
    assert wsim.stats.wait_for(lambda s: s.ws_swallowed == 2, timeout=5)
    with pytest.raises(TimeoutError):
        quiet.recv(timeout=0)
    assert sum(wsim.stats.ws_messages.values()) == sent
    fresh = socket_for(wsim)  # sockets opened later are not silenced
    fresh.send("ech+hb")
    assert fresh.recv() == "ech+hb"
    assert wsim.drop_websockets() == 2  # the silenced one is still open


def test_stop_closes_every_socket_and_joins_every_thread(
    no_thread_leak: None, stack: contextlib.ExitStack
) -> None:
    before = set(threading.enumerate())
    sim = GatewaySimulator(seed=7, speed=0, start=TUESDAY_MORNING, ws_heartbeat=0.05)
    sim.start()
    clients = [Socket(open_socket(sim, stack)) for _ in range(3)]
    for client in clients:
        client.greeted()
        client.send(smd(AAPL))
        client.recv()
    sim.stop()
    ours = {client.connection.recv_events_thread for client in clients}
    left = [t.name for t in threading.enumerate() if t not in before and t not in ours]
    assert left == []  # the accept, handler, push, writer and websockets threads all ended
    for client in clients:
        with pytest.raises(ConnectionClosed):
            while True:
                client.recv()
        client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sim.port), timeout=5)
