"""Contract endpoints and the instrument universe."""

from __future__ import annotations

from typing import Any

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimInstrument

REAL_CONIDS = {
    "AAPL": 265598,
    "IBM": 8314,
    "MSFT": 272093,
    "AMZN": 3691937,
    "GOOGL": 208813719,
    "META": 107113386,
    "TSLA": 76792991,
    "NVDA": 4815747,
    "SPY": 756733,
    "QQQ": 320227571,
}


def test_universe_has_real_conids_and_enough_listings(sim: GatewaySimulator) -> None:
    for symbol, conid in REAL_CONIDS.items():
        assert sim.conid(symbol) == conid
    us = [inst for inst in sim.instruments.values() if inst.us]
    assert len({inst.symbol for inst in us}) >= 22
    assert sim.instruments[756733].exchange == "ARCA"
    with pytest.raises(TypeError):
        sim.instruments[1] = sim.instruments[8314]  # type: ignore[index]
    with pytest.raises(KeyError, match="known symbols"):
        sim.conid("NOPE")


def test_secdef_search_aapl_lists_foreign_listings(client: Any) -> None:
    body = client.get("/iserver/secdef/search", params={"symbol": "AAPL"}).json()
    assert [(e["conid"], e["description"]) for e in body] == [
        ("265598", "NASDAQ"),
        ("38708077", "MEXI"),
        ("273982664", "EBS"),
    ]
    first = body[0]
    assert first["companyHeader"] == "APPLE INC - NASDAQ"
    assert first["sections"][0] == {"secType": "STK"}
    assert set(first) >= {"companyName", "symbol", "restricted", "fop", "opt", "war"}
    assert body[1]["opt"] is None


def test_secdef_search_variants(client: Any) -> None:
    dual = client.get("/iserver/secdef/search", params={"symbol": "dual"}).json()
    assert [e["description"] for e in dual] == ["NYSE", "NASDAQ"]
    assert client.post("/iserver/secdef/search", json={"symbol": "IBM"}).json()[0]["conid"] == (
        "8314"
    )
    assert client.get("/iserver/secdef/search", params={"symbol": "ZZZZ"}).json() == []
    by_name = client.get("/iserver/secdef/search", params={"symbol": "apple", "name": "true"})
    assert by_name.json()[0]["symbol"] == "AAPL"
    assert (
        client.get("/iserver/secdef/search", params={"symbol": "SPY", "secType": "IND"}).json()
        == []
    )
    assert client.get("/iserver/secdef/search").status_code == 400


def test_trsrv_stocks_groups_listings_like_ibkr(client: Any) -> None:
    body = client.get("/trsrv/stocks", params={"symbols": "AAPL,IBM,ZZZZ"}).json()
    assert set(body) == {"AAPL", "IBM"}
    apple = body["AAPL"][0]
    assert apple["name"] == "APPLE INC" and apple["assetClass"] == "STK"
    assert apple["contracts"] == [
        {"conid": 265598, "exchange": "NASDAQ", "isUS": True},
        {"conid": 38708077, "exchange": "MEXI", "isUS": False},
        {"conid": 273982664, "exchange": "EBS", "isUS": False},
    ]


def test_added_instruments_are_served(client: Any, sim: GatewaySimulator) -> None:
    added = sim.add_instrument("ACME", 99000001, exchange="NASDAQ", base_price=12.5)
    assert added == SimInstrument(99000001, "ACME", "ACME CORP", "NASDAQ", "USD", "STK", 12.5, True)
    assert sim.conid("acme") == 99000001
    search = client.get("/iserver/secdef/search", params={"symbol": "ACME"}).json()
    assert search[0]["conid"] == "99000001"
    bars = client.history(conid=99000001, bar="5min", period="1d").json()["data"]
    assert 5 < bars[0]["o"] < 30
    with pytest.raises(ValueError, match="already"):
        sim.add_instrument("ACME2", 99000001)
