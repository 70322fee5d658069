"""Session recovery and the keep-alive thread against the simulator."""

from __future__ import annotations

import threading

import pytest

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.session import SessionKeeper
from backtrader_ibkr_cp.client.transport import ClientEvent, Transport
from backtrader_ibkr_cp.errors import AuthenticationError
from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.clocks import tick

INIT = "/iserver/auth/ssodh/init"
#: The keep-alive's interval in these tests: it runs on a fake clock the test moves.
INTERVAL = 60.0


def kinds(events: list[ClientEvent]) -> list[str]:
    return [e.kind for e in events if e.kind != "request"]


def client_threads(before: set[threading.Thread]) -> set[threading.Thread]:
    """Threads started since ``before``, except the simulator's per-connection threads."""
    return {t for t in set(threading.enumerate()) - before if "process_request" not in t.name}


def started_keeper(api: ApiClient, clock: FakeClock) -> SessionKeeper:
    """A running keep-alive on ``clock``, waiting for its first tickle (:func:`tick` runs
    one tickle: it moves the clock one interval and returns once the thread waits again)."""
    keeper = SessionKeeper(api, tickle_interval=INTERVAL, clock=clock)
    keeper.start()
    clock.wait_for_sleepers(1)
    return keeper


def test_session_expiry_mid_use_reauthenticates_once(api: ApiClient, sim: GatewaySimulator) -> None:
    events: list[ClientEvent] = []
    api.transport.add_listener(events.append)
    conid = sim.conid("AAPL")
    api.snapshot([conid])
    sim.expire_session()
    assert len(api.snapshot([conid])) == 1
    assert api.history(conid, "5min", "1h").bars
    assert sim.stats.requests[INIT] == 1
    assert kinds(events) == ["session_lost", "reauthenticated"]
    assert sim.stats.requests["/iserver/accounts"] == 2  # a new brokerage session wants it again


@pytest.mark.parametrize("fault", ["competing", "daily_reset"])
def test_competing_and_daily_reset_are_recovered(
    api: ApiClient, sim: GatewaySimulator, fault: str
) -> None:
    sim.inject(fault)
    assert api.history(sim.conid("AAPL"), "5min", "1h").bars
    assert sim.stats.requests[INIT] == 1
    assert api.auth_status().healthy


def test_competing_login_is_taken_back(api: ApiClient, sim: GatewaySimulator) -> None:
    sim.compete()
    assert api.secdef_search("IBM")
    assert sim.stats.requests[INIT] == 1


def test_concurrent_401s_reauthenticate_once(api: ApiClient, sim: GatewaySimulator) -> None:
    conid = sim.conid("AAPL")
    api.history(conid, "5min", "1h")
    sim.expire_session()
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        try:
            api.history(conid, "5min", "1h")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert sim.stats.requests[INIT] == 1


def test_logged_out_gateway_says_where_to_log_in(api: ApiClient, sim: GatewaySimulator) -> None:
    api.logout()
    with pytest.raises(AuthenticationError) as raised:
        api.history(sim.conid("AAPL"), "5min", "1h")
    assert str(raised.value).startswith(
        f"Session not authenticated: log in at {sim.url} (the gateway's login page)"
    )
    assert sim.stats.requests[INIT] == 0  # nothing to reopen: a person must log in


def test_a_reconnection_tries_ssodh_init_even_when_the_gateway_says_disconnected(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    """The store's reconnection asks the gateway rather than give up on ``connected: false``
    (the gateway may only have lost its link to IBKR); the simulator reopens after a logout.
    (It gave up without asking, so a live run never came back from the fault matrix's
    logged-out gateway.)"""
    api.logout()
    keeper = SessionKeeper(api)
    assert keeper.ensure_authenticated(even_disconnected=True).healthy
    assert sim.stats.requests[INIT] == 1 and sim.authenticated


def test_ensure_authenticated_opens_the_brokerage_session(sim: GatewaySimulator) -> None:
    sim.expire_session()
    with Transport(sim.url) as transport:
        keeper = SessionKeeper(ApiClient(transport))
        assert keeper.ensure_authenticated().healthy
    assert sim.authenticated
    assert sim.stats.requests[INIT] == 1


def test_ensure_authenticated_when_healthy_sends_one_request(
    api: ApiClient, sim: GatewaySimulator
) -> None:
    assert SessionKeeper(api).ensure_authenticated().healthy
    assert sum(sim.stats.requests.values()) == 1


def test_keepalive_tickles_and_stops_cleanly(
    api: ApiClient, sim: GatewaySimulator, fake_clock: FakeClock
) -> None:
    before = set(threading.enumerate())
    keeper = started_keeper(api, fake_clock)
    try:
        keeper.start()  # harmless
        started_threads = sorted(t.name for t in client_threads(before))
        assert started_threads == ["ibkr-cp-keepalive"]
        assert keeper.tickles == 0 and sim.stats.requests["/tickle"] == 0  # not before 60 s
        tick(fake_clock, INTERVAL)
        tick(fake_clock, INTERVAL)
        assert keeper.tickles == 2 and sim.stats.requests["/tickle"] == 2
        assert keeper.last_result is not None and keeper.last_tickle == 1000.0 + 2 * INTERVAL
    finally:
        keeper.close()  # joins the thread (at most 5 s): only close() can end its 60 s wait
    assert not keeper.running
    assert sorted(t.name for t in client_threads(before)) == []
    fake_clock.advance(10 * INTERVAL)  # the thread is gone: nothing tickles any more
    assert fake_clock.sleepers() == 0
    assert keeper.tickles == 2 and sim.stats.requests["/tickle"] == 2
    assert fake_clock.waits == [INTERVAL] * 3
    keeper.close()  # twice is fine


def test_keepalive_close_interrupts_a_long_interval(api: ApiClient, fake_clock: FakeClock) -> None:
    before = set(threading.enumerate())
    keeper = SessionKeeper(api, tickle_interval=3600.0, clock=fake_clock)
    keeper.start()
    fake_clock.wait_for_sleepers(1)
    keeper.close()
    assert sorted(t.name for t in client_threads(before)) == []  # ended by close(), not time
    assert fake_clock.now() == 1000.0 and fake_clock.waits == [3600.0]
    assert keeper.tickles == 0 and not keeper.running


def test_keepalive_failure_is_an_event_and_the_thread_survives(
    sim: GatewaySimulator, fake_clock: FakeClock
) -> None:
    events: list[ClientEvent] = []
    with Transport(sim.url, retry=RetryPolicy.no_retries(), on_event=events.append) as transport:
        sim.inject("http_500", path="/tickle")
        with started_keeper(ApiClient(transport), fake_clock) as keeper:
            tick(fake_clock, INTERVAL)  # the tickle fails; the thread waits for the next one
            assert keeper.running and keeper.failures == 1 and keeper.tickles == 0
            tick(fake_clock, INTERVAL)
            assert keeper.failures == 1 and keeper.tickles == 1
    failed = [e for e in events if e.kind == "keepalive_failed"]
    assert len(failed) == 1 and "500" in failed[0].message


def test_keepalive_reopens_a_dropped_session(
    api: ApiClient, sim: GatewaySimulator, fake_clock: FakeClock
) -> None:
    events: list[ClientEvent] = []
    api.transport.add_listener(events.append)
    sim.expire_session()
    with started_keeper(api, fake_clock):
        tick(fake_clock, INTERVAL)  # the tickle finds the session gone and reopens it
        assert sim.stats.requests[INIT] == 1
        assert kinds(events) == ["session_lost", "reauthenticated"]
    assert sim.authenticated


def test_keepalive_on_a_logged_out_gateway_reports_and_keeps_running(
    api: ApiClient, sim: GatewaySimulator, fake_clock: FakeClock
) -> None:
    events: list[ClientEvent] = []
    api.transport.add_listener(events.append)
    api.logout()
    with started_keeper(api, fake_clock) as keeper:
        tick(fake_clock, INTERVAL)
        assert "keepalive_failed" in kinds(events)
        assert keeper.running
    failed = next(e for e in events if e.kind == "keepalive_failed")
    assert "log in at" in failed.message


def test_tickle_interval_must_be_positive(api: ApiClient) -> None:
    from backtrader_ibkr_cp.errors import ConfigError

    with pytest.raises(ConfigError, match="tickle_interval"):
        SessionKeeper(api, tickle_interval=0)
