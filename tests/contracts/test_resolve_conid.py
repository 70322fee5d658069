"""A conid is looked up at the gateway (``/trsrv/secdef``), never made up; a 4xx is final."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest

from backtrader_ibkr_cp import ApiError, Contract, GatewayClient
from backtrader_ibkr_cp.contracts.resolver import ContractNotFound
from backtrader_ibkr_cp.models.secdef import parse_trsrv_secdef
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import WEDNESDAY_EVENING

UNKNOWN = 999_999_999


@pytest.fixture
def sim(sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    return sim_factory(seed=1, speed=0.0, start=WEDNESDAY_EVENING)


@pytest.fixture
def client(sim: GatewaySimulator) -> Iterator[GatewayClient]:
    with GatewayClient(sim.url, plugins=False) as gateway_client:
        gateway_client.authenticate()
        yield gateway_client


def test_an_unknown_conid_is_contract_not_found(
    sim: GatewaySimulator, client: GatewayClient
) -> None:
    with pytest.raises(ContractNotFound) as caught:
        client.resolve(UNKNOWN)
    error = caught.value
    assert error.endpoint == "/trsrv/secdef" and error.spec == str(UNKNOWN)
    assert f"conid {UNKNOWN} is not a contract the gateway knows" in str(error)
    assert "ibkr-cp search" in str(error)
    assert sim.stats.requests["/trsrv/secdef"] == 1  # asked once, not retried
    assert not client.supports_symbol(UNKNOWN)


def test_a_known_conid_is_the_gateways_contract_looked_up_once(
    sim: GatewaySimulator, client: GatewayClient
) -> None:
    assert client.resolve(265598) == Contract(
        265598, "AAPL", "STK", "NASDAQ", "USD", "APPLE INC", "America/New_York"
    )
    zurich = client.resolve(273982664)
    assert (zurich.exchange, zurich.currency, zurich.time_zone) == ("EBS", "CHF", "Europe/Zurich")
    client.resolve(265598)
    assert sim.stats.requests["/trsrv/secdef"] == 2  # the repeat came from the cache


def test_bars_for_an_unknown_conid_fail_before_any_history_request(
    sim: GatewaySimulator, client: GatewayClient
) -> None:
    with pytest.raises(ContractNotFound):
        client.fetch_bars(
            UNKNOWN, "5min", datetime(2024, 3, 4, tzinfo=timezone.utc), WEDNESDAY_EVENING
        )
    assert sim.stats.requests["/iserver/marketdata/history"] == 0


def test_a_4xx_answer_is_never_retried(sim: GatewaySimulator, client: GatewayClient) -> None:
    made_up = Contract(UNKNOWN, "X")  # a Contract is used as given: the gateway answers 400
    one_window = (
        datetime(2024, 3, 4, tzinfo=timezone.utc),
        datetime(2024, 3, 5, tzinfo=timezone.utc),
    )
    with pytest.raises(ApiError) as caught:
        client.fetch_bars(made_up, "5min", *one_window)
    assert caught.value.status == 400
    assert caught.value.context["attempts"] == 1
    assert sim.stats.requests["/iserver/marketdata/history"] == 1


def test_parse_trsrv_secdef_reads_ibkrs_spec_example() -> None:
    # IBKR's OpenAPI 2.13 example for GET /trsrv/secdef (fields the parser reads, verbatim).
    body = {
        "secdef": [
            {
                "conid": 8314,
                "currency": "USD",
                "listingExchange": "NYSE",
                "name": "INTL BUSINESS MACHINES CORP",
                "assetClass": "STK",
                "ticker": "IBM",
                "isUS": True,
            }
        ]
    }
    assert parse_trsrv_secdef(body) == [
        Contract(8314, "IBM", "STK", "NYSE", "USD", "INTL BUSINESS MACHINES CORP")
    ]
    assert parse_trsrv_secdef({"secdef": []}) == []
