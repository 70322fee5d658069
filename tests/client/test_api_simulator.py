"""Every ApiClient operation over real HTTPS against the gateway simulator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.transport import ClientEvent, Transport
from backtrader_ibkr_cp.errors import ApiError, DataUnavailable
from backtrader_ibkr_cp.models.timeframe import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.instants import TUESDAY_MIDDAY
from tests.support.policies import FAST_RETRY

SNAPSHOT = "/iserver/marketdata/snapshot"


def test_auth_status_and_brokerage_session(api: ApiClient) -> None:
    status = api.auth_status()
    assert status.healthy
    assert status.server_name
    assert api.init_brokerage_session(compete=True).authenticated


def test_tickle(api: ApiClient) -> None:
    result = api.tickle()
    assert result.authenticated and result.connected and not result.competing
    assert result.session_expires_ms is not None and result.session_expires_ms > 0


def test_sso_validate_and_reauthenticate(api: ApiClient, sim: GatewaySimulator) -> None:
    assert api.sso_validate()["RESULT"] is True
    api.reauthenticate()
    assert sim.stats.requests["/iserver/reauthenticate"] == 1


def test_logout_ends_the_session(api: ApiClient, sim: GatewaySimulator) -> None:
    api.logout()
    status = api.auth_status()
    assert not status.authenticated and not status.connected


def test_secdef_search(api: ApiClient) -> None:
    contracts = api.secdef_search("AAPL")
    assert [c.contract_id for c in contracts] == [265598, 38708077, 273982664]
    assert contracts[0].exchange == "NASDAQ" and contracts[0].currency == "USD"
    assert api.secdef_search("NOSUCHSYMBOL") == []
    assert api.secdef_search("AAPL", sec_type="STK")[0].sec_type == "STK"


def test_history_bars_and_parameters(api: ApiClient, sim: GatewaySimulator) -> None:
    conid = sim.conid("AAPL")
    end = sim.now() - timedelta(hours=1)
    response = api.history(conid, Timeframe.MINUTE_5, "1h", start_time=end, outside_rth=True)
    assert response.symbol == "AAPL"
    assert len(response.bars) == 12
    assert all(bar.timestamp < end for bar in response.bars)
    assert response.availability.realtime
    sent = sim.stats.history_requests[-1]
    assert sent["startTime"] == end.strftime("%Y%m%d-%H:%M:%S")
    assert sent["outsideRth"] == "true" and sent["bar"] == "5min" and sent["period"] == "1h"


def test_history_volume_is_in_shares(api: ApiClient, sim: GatewaySimulator) -> None:
    end = sim.now().replace(minute=0, second=0, microsecond=0)
    bars = api.history(sim.conid("AAPL"), "1min", "30min", start_time=end).bars
    truth = {b.timestamp: b for b in sim.truth("AAPL", "1min", end - timedelta(minutes=30), end)}
    assert bars and all(bar.volume == truth[bar.timestamp].volume for bar in bars)


def test_history_no_data(api: ApiClient, sim: GatewaySimulator) -> None:
    sim.inject("no_data")
    with pytest.raises(DataUnavailable, match="No data"):
        api.history(sim.conid("AAPL"), "1min", "30min")


def test_snapshot_calls_accounts_once_then_preflight_then_fields(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    conids = [sim.conid("AAPL"), sim.conid("IBM")]
    first = api.snapshot(conids)
    assert [s.conid for s in first] == conids
    assert all(s.is_preflight for s in first)
    second = api.snapshot(conids)
    assert all(s.last is not None and s.bid is not None for s in second)
    assert second[0].symbol == "AAPL"
    assert sim.stats.requests["/iserver/accounts"] == 1
    assert sim.stats.requests[SNAPSHOT] == 2


def test_snapshot_splits_more_than_100_conids(api: ApiClient, sim: GatewaySimulator) -> None:
    conids = [sim.add_instrument(f"SIM{i}", 9_000_000 + i).conid for i in range(150)]
    snapshots = api.snapshot(conids)
    assert sorted(s.conid for s in snapshots) == sorted(conids)
    assert [len(batch) for batch in sim.stats.snapshot_conids] == [100, 50]


def test_snapshot_asks_accounts_again_when_the_gateway_wants_it(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    conid = sim.conid("AAPL")
    api.snapshot([conid])
    sim.expire_session()  # a new brokerage session, opened behind the client's back
    sim.compete()
    api.init_brokerage_session(compete=True)
    assert len(api.snapshot([conid])) == 1
    assert sim.stats.requests["/iserver/accounts"] == 2


def test_snapshot_ready_polls_past_the_preflight(api: ApiClient, sim: GatewaySimulator) -> None:
    conids = [sim.conid("IBM"), sim.conid("AAPL")]
    ready = api.snapshot_ready(conids, interval=0.05)
    assert [s.conid for s in ready] == conids
    assert all(s.last is not None for s in ready)


def test_snapshot_ready_names_the_conids_without_data(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    aapl, ibm = sim.conid("AAPL"), sim.conid("IBM")
    sim.set_availability(ibm, "N")  # no subscription: the gateway never sends IBM's prices
    with pytest.raises(DataUnavailable, match=f"conid\\(s\\) {ibm} after") as raised:
        api.snapshot_ready([aapl, ibm], ["31", "84"], timeout=0.3, interval=0.05)
    assert raised.value.context["conids"] == [ibm]


def test_snapshot_ready_returns_an_unsubscribed_contract_as_the_gateway_reports_it(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    ibm = sim.conid("IBM")
    sim.set_availability(ibm, "N")
    (snap,) = api.snapshot_ready([ibm], timeout=2.0, interval=0.05)
    assert not snap.availability.subscribed and snap.last is None


def test_unsubscribe(api: ApiClient, sim: GatewaySimulator) -> None:
    conid = sim.conid("AAPL")
    api.snapshot([conid])
    assert api.unsubscribe(conid) is True
    assert api.unsubscribe(conid) is False  # nothing subscribed: 500 "unknown", not retried
    assert sim.stats.requests["/iserver/marketdata/unsubscribe"] == 2
    assert api.unsubscribe_all() is True


def test_server_time_follows_the_gateways_clock(
    sim_factory: Callable[..., GatewaySimulator], fake_clock: FakeClock
) -> None:
    """The simulator's market clock runs on the client's fake clock: the client's idea of
    the gateway's time is a lower bound to the second from the ``Date`` header, advanced by
    the local clock, and exact to the millisecond once a snapshot's ``_updated`` came."""
    fake_clock.autojump = True  # snapshot_ready's waits between polls move both clocks
    sim = sim_factory(seed=0, speed=1, start=TUESDAY_MIDDAY, monotonic=fake_clock.now)
    with Transport(sim.url, retry=FAST_RETRY, clock=fake_clock) as transport:
        api = ApiClient(transport)
        assert api.server_time() == sim.now() == TUESDAY_MIDDAY  # a Date on a whole second
        fake_clock.advance(90.5)
        assert api.server_time() == sim.now()  # the Date, advanced by the local clock
        api.snapshot_ready([sim.conid("AAPL")], interval=0.05)
        assert fake_clock.waits  # the polls waited (on both clocks)
        assert abs(api.server_time() - sim.now()) < timedelta(milliseconds=1)


def test_unknown_conid_is_an_api_error(api: ApiClient) -> None:
    with pytest.raises(ApiError, match="not a known contract") as raised:
        api.snapshot([999_999])
    assert raised.value.status == 400


def test_request_events_for_metrics(api: ApiClient, sim: GatewaySimulator) -> None:
    events: list[ClientEvent] = []
    api.transport.add_listener(events.append)
    api.auth_status()
    (event,) = events
    assert event.kind == "request"
    assert event.details["method"] == "POST" and event.details["status"] == 200
    assert event.details["path"] == "/iserver/auth/status"
