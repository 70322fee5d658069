"""``ibkr-cp status`` is a diagnostic: it reports the session and never acts on it."""

from __future__ import annotations

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.cli.cli_process import ibkr_cp


def test_status_reports_a_competing_login_and_leaves_it_alone(sim: GatewaySimulator) -> None:
    sim.compete()
    result = ibkr_cp("status", "--gateway", sim.url)
    assert result.returncode == 1
    assert "competing      yes" in result.stdout
    assert "authenticated  no" in result.stdout
    err = result.stderr
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "another login" in err and "left alone" in err and "ibkr-cp bars" in err
    assert sim.stats.requests["/iserver/auth/ssodh/init"] == 0
    assert not sim.authenticated  # the other login still holds the session


def test_status_does_not_open_a_session_that_is_not_open(sim: GatewaySimulator) -> None:
    sim.expire_session()
    result = ibkr_cp("status", "--gateway", sim.url)
    assert result.returncode == 1
    assert "authenticated  no" in result.stdout and "competing      no" in result.stdout
    assert "brokerage session is not open" in result.stderr
    assert sim.stats.requests["/iserver/auth/ssodh/init"] == 0


def test_status_of_a_usable_session_checks_market_data_without_opening_anything(
    sim: GatewaySimulator,
) -> None:
    result = ibkr_cp("status", "--gateway", sim.url)
    assert result.returncode == 0, result.stderr
    assert "competing      no" in result.stdout
    assert "market data    AAPL (265598): real time" in result.stdout
    assert sim.stats.requests["/iserver/auth/ssodh/init"] == 0
