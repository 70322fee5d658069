"""secdef/search and trsrv/stocks parsing on IBKR's example and real recordings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backtrader_ibkr_cp.errors import ApiError, DataIntegrityError
from backtrader_ibkr_cp.models.contract import Contract
from backtrader_ibkr_cp.models.secdef import parse_secdef_search, parse_trsrv_stocks, venue

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_ibm_search_example() -> None:
    contracts = parse_secdef_search(load("secdef_search_IBM.json"))
    # the third entry is a bond-issuer group (no symbol, conid 2147483647): skipped
    assert contracts == [
        Contract(8314, "IBM", "STK", "NYSE", "USD", "INTL BUSINESS MACHINES CORP"),
        Contract(41645598, "IBM", "STK", "LSE", "GBP", "INTL BUSINESS MACHINES CORP",
                 time_zone="Europe/London"),
    ]  # fmt: skip
    assert contracts[0].spec() == "IBM-STK-NYSE-USD"


def test_aapl_listings_like_the_simulator() -> None:
    body = [
        {"conid": "265598", "companyHeader": "APPLE INC - NASDAQ", "companyName": "APPLE INC",
         "symbol": "AAPL", "description": "NASDAQ", "sections": [{"secType": "STK"}]},
        {"conid": "38708077", "companyHeader": "APPLE INC - MEXI", "companyName": "APPLE INC",
         "symbol": "AAPL", "description": "MEXI", "sections": [{"secType": "STK"}]},
        {"conid": "273982664", "companyHeader": "APPLE INC - EBS", "companyName": "APPLE INC",
         "symbol": "AAPL", "description": "EBS", "sections": []},
    ]  # fmt: skip
    found = parse_secdef_search(body)
    assert [(c.conid, c.exchange, c.currency) for c in found] == [
        (265598, "NASDAQ", "USD"),
        (38708077, "MEXI", "MXN"),
        (273982664, "EBS", "CHF"),
    ]
    assert found[2].sec_type == "STK"  # no sections: STK


def test_unknown_exchange_has_no_currency() -> None:
    (contract,) = parse_secdef_search([{"conid": 5, "symbol": "X", "description": "MOON"}])
    assert contract.currency == "" and contract.exchange == "MOON"
    assert venue("nasdaq") is not None and venue("MOON") is None


def test_unknown_symbol_is_empty() -> None:
    assert parse_secdef_search([]) == []


@pytest.mark.parametrize(
    "body", [{"conid": "1"}, "x", None, [1], [{"symbol": "A", "conid": "abc"}], [{"symbol": "A"}]]
)
def test_search_malformed(body: object) -> None:
    with pytest.raises(DataIntegrityError, match="secdef/search"):
        parse_secdef_search(body)


def test_search_in_band_error() -> None:
    with pytest.raises(ApiError, match="bad symbol"):
        parse_secdef_search({"error": "bad symbol"})


@pytest.mark.parametrize(
    "name", ["trsrv_stocks_AAPL_IBM_recorded.json", "trsrv_stocks_AAPL_ibind.json"]
)
def test_trsrv_stocks_aapl(name: str) -> None:
    stocks = parse_trsrv_stocks(load(name))
    aapl = stocks["AAPL"]
    assert [(c.conid, c.exchange, c.currency) for c in aapl] == [
        (265598, "NASDAQ", "USD"),
        (38708077, "MEXI", "MXN"),
        (273982664, "EBS", "CHF"),
        (493546048, "LSEETF", "GBP"),
        (532640894, "AEQLIT", "CAD"),
    ]
    assert aapl[0].description == "APPLE INC" and aapl[4].description == "APPLE INC-CDR"
    assert aapl[4].time_zone == "America/Toronto"


def test_trsrv_stocks_ibm() -> None:
    stocks = parse_trsrv_stocks(load("trsrv_stocks_IBM_ibkr_spec_example.json"))
    assert [c.conid for c in stocks["IBM"]] == [8314, 1411277, 38709473, 41645598, 530091934]
    assert stocks["IBM"][1].currency == "EUR"


def test_trsrv_is_us_fallback() -> None:
    body = {"X": [{"name": "X", "assetClass": "STK",
                   "contracts": [{"conid": 1, "exchange": "NEWVENUE", "isUS": True}]}]}  # fmt: skip
    assert parse_trsrv_stocks(body)["X"][0].currency == "USD"


@pytest.mark.parametrize("body", [[], {"X": {}}, {"X": [{}]}, {"X": [{"contracts": ["a"]}]}])
def test_trsrv_malformed(body: object) -> None:
    with pytest.raises(DataIntegrityError, match="trsrv/stocks"):
        parse_trsrv_stocks(body)
