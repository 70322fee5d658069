"""The WebSocket's pure parts on plain JSON: message parsing (IBKR's samples in
``tests/fixtures``), merging ``smd`` deltas into snapshots, commands, and the keeper's timers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from backtrader_ibkr_cp.client.ws_messages import (
    Accounts,
    AuthState,
    Echo,
    Greeting,
    Heartbeat,
    MarketUpdate,
    OrderUpdate,
    TicReply,
    TopicError,
    TradeUpdate,
    Unrecognised,
    WaitingForSession,
    merge_market,
    parse_message,
    session_cookie,
    session_token,
    smd_command,
    snapshot_of,
    str_command,
    umd_command,
)
from backtrader_ibkr_cp.client.ws_schedule import Due, KeepAlive
from backtrader_ibkr_cp.errors import AuthenticationError, DataIntegrityError
from backtrader_ibkr_cp.models.snapshot import parse_snapshots

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def frame(body: Any) -> str:
    return json.dumps(body)


def test_ibkr_smd_sample_is_market_data() -> None:
    sample = load("ws_smd_message_ibkr_doc.json")
    message = parse_message(frame(sample).encode())  # the gateway forwards binary frames
    assert isinstance(message, MarketUpdate) and message.conid == 8314
    assert "topic" not in message.fields and message.fields["31"] == "189.60"
    snapshot = snapshot_of(merge_market(None, message))
    expected = parse_snapshots([{k: v for k, v in sample.items() if k != "topic"}])[0]
    assert snapshot == expected and snapshot.last == 189.60 and snapshot.bid_size == 200


def test_deltas_merge_into_full_snapshots() -> None:
    first = parse_message(frame(load("ws_smd_message_ibkr_doc.json")))
    assert isinstance(first, MarketUpdate)
    state = merge_market(None, first)
    update = {"conid": 8314, "31": "189.70", "86": "189.71", "_updated": 1712596912593}
    delta = parse_message(frame({**update, "topic": "smd+8314"}))
    assert isinstance(delta, MarketUpdate)
    merged = snapshot_of(merge_market(state, delta))
    assert (merged.last, merged.ask, merged.bid) == (189.70, 189.71, 189.56)
    assert merged.timestamp is not None and merged.timestamp.timestamp() == 1712596912.593
    gone = parse_message(frame({"conid": 8314, "84": "", "topic": "smd+8314"}))
    assert isinstance(gone, MarketUpdate)
    assert snapshot_of(merge_market(merge_market(state, delta), gone)).bid is None


def test_a_malformed_value_is_a_data_integrity_error() -> None:
    bad = parse_message(frame({"conid": 8314, "31": "abc", "topic": "smd+8314"}))
    assert isinstance(bad, MarketUpdate)
    with pytest.raises(DataIntegrityError, match="8314"):
        snapshot_of(merge_market(None, bad))
    with pytest.raises(DataIntegrityError, match="conid"):
        parse_message(frame({"31": "1.00", "topic": "smd+x"}))


def test_order_and_trade_samples() -> None:
    orders = parse_message(frame(load("orders/ws_sor_first_message_cw_doc.json")))
    assert isinstance(orders, OrderUpdate) and orders.orders[0]["orderId"] == 922048212
    trades = parse_message(frame(load("orders/ws_str_message_cw_doc.json")))
    assert isinstance(trades, TradeUpdate)
    assert trades.trades[0]["execution_id"] == "0000e0d5.60cf1bd1.01.01"
    with pytest.raises(DataIntegrityError, match="sor"):
        parse_message(frame({"topic": "sor", "args": [1, 2]}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ech+hb", Echo()),
        (frame({"topic": "system", "success": "user1"}), Greeting("user1")),
        (frame({"topic": "system", "hb": 1712596911593}), Heartbeat(1712596911593)),
        (frame({"topic": "sts", "args": {"authenticated": True}}), AuthState(True, None)),
        (
            frame({"topic": "sts", "args": {"authenticated": False, "competing": True}}),
            AuthState(False, True),
        ),
        (frame({"message": "waiting for session"}), WaitingForSession()),
        (frame({"topic": "smd+1", "error": "unknown"}), TopicError("smd+1", "unknown")),
        (frame({"topic": "blt", "args": {}}), Unrecognised("blt", {"topic": "blt", "args": {}})),
    ],
)
def test_control_messages(text: str, expected: object) -> None:
    assert parse_message(text) == expected


def test_accounts_and_tic() -> None:
    act = parse_message(frame({"topic": "act", "args": {"accounts": ["DU1"], "isPaper": True}}))
    assert isinstance(act, Accounts) and act.body["isPaper"] is True
    tic = parse_message(frame({"topic": "tic", "alive": True, "lastAccessed": 5}))
    assert isinstance(tic, TicReply) and tic.body["lastAccessed"] == 5


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"text"'])
def test_frames_that_are_not_objects_are_refused(text: str) -> None:
    with pytest.raises(DataIntegrityError, match="WebSocket"):
        parse_message(text)


def test_commands() -> None:
    assert smd_command(265598, ["31", "84"]) == 'smd+265598+{"fields": ["31", "84"]}'
    assert umd_command(265598) == "umd+265598+{}"
    assert str_command(2) == 'str+{"days": 2}'
    assert str_command(1, realtime_only=True) == 'str+{"days": 1, "realtimeUpdatesOnly": true}'
    assert session_cookie("abc") == 'api={"session":"abc"}'
    assert session_cookie("abc", "plain") == "api=abc"


def test_the_session_token_comes_from_tickle() -> None:
    assert (
        session_token(load("tickle_ibkr_spec_example.json"))
        == load("tickle_ibkr_spec_example.json")["session"]
    )
    with pytest.raises(AuthenticationError, match="log in"):
        session_token({"error": "no session"})
    with pytest.raises(DataIntegrityError, match="tickle"):
        session_token([])


def test_keep_alive_timers() -> None:
    timers = KeepAlive(echo=20, tic=60, silence=35, refresh=300, now=0.0)
    assert timers.next_at() == 20
    assert timers.due(19.9) == Due()
    assert timers.due(20) == Due(echo=True)
    timers.seen(30)
    assert timers.next_at() == 40  # the next echo, before silence at 65
    timers.logged_in(30)
    assert timers.due(60) == Due(echo=True, tic=True)
    assert timers.due(65) == Due(silent=35)  # 35 s since the last message: cut once
    assert timers.due(66).silent is None
    assert timers.due(330) == Due(echo=True, tic=True, refresh=True)
    quiet = KeepAlive(echo=20, tic=60, silence=None, refresh=None, now=0.0)
    quiet.logged_in(0)
    assert quiet.due(10_000) == Due(echo=True, tic=True)
    assert math.isfinite(quiet.next_at())
