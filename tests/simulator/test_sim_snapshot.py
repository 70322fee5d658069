"""``/iserver/marketdata/snapshot`` over HTTPS: accounts-first, pre-flight, fields, agreement."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.simulator.snapshot import format_volume

UTC = timezone.utc
FIELDS = "31,55,70,71,84,85,86,87,88,7059,7295,7741,7762"


def _ready(client: Any, conids: str = "265598") -> None:
    """Satisfy accounts-first and the pre-flight for ``conids``."""
    assert client.get("/iserver/accounts").status_code == 200
    preflight = client.snapshot(conids, FIELDS).json()
    assert all(set(entry) == {"conid", "conidEx"} for entry in preflight)


def _cents(text: str) -> int:
    return round(float(text) * 100)


def test_accounts_first_then_preflight_then_fields(client: Any, sim: GatewaySimulator) -> None:
    response = client.snapshot("265598,8314", FIELDS)
    assert response.status_code == 400
    assert response.json() == {"error": "Please query /accounts first"}

    assert client.get("/iserver/accounts").json()["accounts"] == ["DU0000000"]
    preflight = client.snapshot("265598,8314", FIELDS).json()
    assert preflight == [
        {"conidEx": "265598", "conid": 265598},
        {"conidEx": "8314", "conid": 8314},
    ]
    entries = client.snapshot("265598,8314", FIELDS).json()
    assert [e["conid"] for e in entries] == [265598, 8314]
    first = entries[0]
    assert first["conidEx"] == "265598" and first["55"] == "AAPL"
    assert first["_updated"] == int(sim.now().timestamp() * 1000)
    assert first["6509"] == "RpB" and first["6119"] == first["server_id"]
    for code in FIELDS.split(","):
        assert isinstance(first[code], str), code
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", first["85"])
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", first["88"])
    assert _cents(first["86"]) - _cents(first["84"]) == 1  # one-cent spread
    assert first["86"] == first["31"]


def test_snapshot_at_a_minute_end_agrees_with_bars(client: Any, sim: GatewaySimulator) -> None:
    _ready(client)
    sim.set_time(datetime(2024, 3, 5, 15, 1, tzinfo=UTC))  # 10:01:00 New York
    entry = client.snapshot("265598", FIELDS).json()[0]
    day = sim.truth("AAPL", "1min", start=datetime(2024, 3, 5, 9, 0, tzinfo=UTC), outside_rth=True)
    assert day[-1].timestamp == datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
    assert entry["31"] == f"{day[-1].close:.2f}"
    assert entry["7762"] == str(int(sum(b.volume for b in day)))
    assert entry["70"] == f"{max(b.high for b in day):.2f}"
    assert entry["71"] == f"{min(b.low for b in day):.2f}"
    assert entry["7295"] == f"{day[0].open:.2f}"
    monday = sim.truth("AAPL", "1d", start=datetime(2024, 3, 4, tzinfo=UTC))[0]
    assert entry["7741"] == f"{monday.close:.2f}"
    assert entry["87"] == format_volume(int(entry["7762"]))


def test_mid_minute_price_stays_inside_the_minute_bar(client: Any, sim: GatewaySimulator) -> None:
    _ready(client)
    seen: list[int] = []
    for second in (5, 15, 25, 35, 45, 58):
        sim.set_time(datetime(2024, 3, 5, 15, 10, second, tzinfo=UTC))
        seen.append(_cents(client.snapshot("265598", "31").json()[0]["31"]))
    sim.set_time(datetime(2024, 3, 5, 15, 11, tzinfo=UTC))
    bar = sim.truth("AAPL", "1min", start=datetime(2024, 3, 5, 15, 10, tzinfo=UTC))[0]
    assert all(round(bar.low * 100) <= price <= round(bar.high * 100) for price in seen)
    assert seen[1] in (round(bar.low * 100), round(bar.high * 100))  # first extreme at 15 s
    assert seen[-1] == round(bar.close * 100)


def test_before_the_first_trade_last_is_prior_close(client: Any, sim: GatewaySimulator) -> None:
    _ready(client)
    sim.set_time(datetime(2024, 3, 5, 8, 30, tzinfo=UTC))  # 03:30 New York
    entry = client.snapshot("265598", FIELDS).json()[0]
    monday = sim.truth("AAPL", "1d", start=datetime(2024, 3, 4, tzinfo=UTC))[0]
    assert entry["31"] == f"C{monday.close:.2f}"
    assert entry["7741"] == f"{monday.close:.2f}"
    assert entry["7762"] == "0"
    assert "70" not in entry and "7295" not in entry
    sim.set_time(datetime(2024, 3, 9, 16, 0, tzinfo=UTC))  # Saturday
    friday = sim.truth("AAPL", "1d", start=datetime(2024, 3, 8, tzinfo=UTC))[0]
    assert client.snapshot("265598", "31").json()[0]["31"] == f"C{friday.close:.2f}"


def test_after_the_close_last_is_the_days_last_close(client: Any, sim: GatewaySimulator) -> None:
    _ready(client)
    sim.set_time(datetime(2024, 3, 6, 2, 0, tzinfo=UTC))  # 21:00 New York
    entry = client.snapshot("265598", "31,7762").json()[0]
    eth = sim.truth("AAPL", "1min", start=datetime(2024, 3, 5, 9, 0, tzinfo=UTC), outside_rth=True)
    assert len(eth) == 960
    assert entry["31"] == f"{eth[-1].close:.2f}"
    assert entry["7762"] == str(int(sum(b.volume for b in eth)))


def test_availability_and_halted(client: Any, sim: GatewaySimulator) -> None:
    _ready(client, "265598,8314,756733")
    sim.set_availability(8314, "DpB")
    sim.set_availability(756733, "N")
    sim.set_halted(265598)
    entries = client.snapshot("265598,8314,756733", FIELDS).json()
    assert entries[0]["31"].startswith("H")
    assert entries[1]["6509"] == "DpB" and "31" in entries[1]
    assert entries[2]["6509"] == "N" and "31" not in entries[2] and entries[2]["55"] == "SPY"
    with pytest.raises(ValueError, match="availability code"):
        sim.set_availability(8314, "X")


def test_unsubscribe_restarts_the_preflight(client: Any) -> None:
    _ready(client, "265598,8314")
    response = client.post("/iserver/marketdata/unsubscribe", json={"conid": 265598})
    assert response.json() == {"success": True}
    entries = client.snapshot("265598,8314", FIELDS).json()
    assert set(entries[0]) == {"conid", "conidEx"} and "31" in entries[1]
    again = client.post("/iserver/marketdata/unsubscribe", json={"conid": 4815747})
    assert again.status_code == 500 and again.json() == {"error": "unknown"}
    assert client.get("/iserver/marketdata/unsubscribeall").json() == {"unsubscribed": True}
    assert all(set(e) == {"conid", "conidEx"} for e in client.snapshot("8314", "31").json())


def test_request_limits_and_unknown_conids(client: Any, sim: GatewaySimulator) -> None:
    client.get("/iserver/accounts")
    many = ",".join(str(conid) for conid in range(1, 102))
    assert client.snapshot(many, "31").status_code == 400
    fields = ",".join(str(code) for code in range(51))
    assert "at most 50" in client.snapshot("265598", fields).json()["error"]
    assert client.snapshot("123", "31").status_code == 400
    assert sim.stats.snapshot_conids[-1] == [123]


@pytest.mark.parametrize(
    ("shares", "text"),
    [(512, "512"), (830_123, "830K"), (25_500_000, "25.5M"), (999_999, "1M"), (1_234, "1.23K")],
)
def test_volume_formatting(shares: int, text: str) -> None:
    assert format_volume(shares) == text
