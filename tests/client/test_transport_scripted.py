"""Transport error mapping over real loopback HTTP, against answers scripted per path."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import requests

from backtrader_ibkr_cp.client.pacing import Pacer
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.transport import (
    AccountsRequired,
    ClientEvent,
    Transport,
    TransportClosed,
)
from backtrader_ibkr_cp.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    GatewayConnectionError,
    RateLimitExceeded,
    RequestTimeout,
)
from backtrader_ibkr_cp.timing import FakeClock
from tests.client.scripted_server import Reply, Scripted

#: Real seconds a test waits for a thread it started before it fails.
JOIN_TIMEOUT = 10.0
FAST = RetryPolicy(backoff_factor=0.001, jitter=0.0)
HTML = b"<!DOCTYPE html><html><body>Client login</body></html>"


def transport(server: Scripted, **kwargs: object) -> Transport:
    kwargs.setdefault("retry", FAST)
    return Transport(server.url, **kwargs)  # type: ignore[arg-type]


def test_json_is_decoded(scripted: Scripted) -> None:
    scripted.on("/iserver/accounts", Reply(body=b'{"accounts": []}'))
    with transport(scripted) as t:
        assert t.request("GET", "/iserver/accounts") == {"accounts": []}


def test_html_page_is_not_a_gateway(scripted: Scripted) -> None:
    scripted.on("/iserver/auth/status", Reply(body=HTML, content_type="text/html"))
    with transport(scripted) as t, pytest.raises(ApiError) as raised:
        t.request("POST", "/iserver/auth/status")
    message = str(raised.value)
    assert "HTML page" in message and "is this a gateway?" in message
    assert f"expected JSON at {scripted.url}/v1/api/iserver/auth/status" in message
    assert scripted.count("/iserver/auth/status") == 1  # not retried


def test_html_without_content_type_is_recognised(scripted: Scripted) -> None:
    scripted.on("/tickle", Reply(body=b"\n  <html><p>hi</p></html>", content_type="text/plain"))
    with transport(scripted) as t, pytest.raises(ApiError, match="HTML page"):
        t.request("POST", "/tickle")


def test_redirect_is_not_followed(scripted: Scripted) -> None:
    scripted.on("/iserver/accounts", Reply(302, b"", headers={"Location": "/sso/Login"}))
    with transport(scripted) as t, pytest.raises(ApiError, match="redirect") as raised:
        t.request("GET", "/iserver/accounts")
    assert "/sso/Login" in str(raised.value) and raised.value.status == 302


def test_401_text_plain_carries_the_gateways_text(scripted: Scripted) -> None:
    scripted.on(
        "/iserver/accounts",
        Reply(401, b"Access denied: session expired", content_type="text/plain"),
    )
    with transport(scripted) as t, pytest.raises(AuthenticationError) as raised:
        t.request("GET", "/iserver/accounts")
    err = raised.value
    assert err.status == 401 and err.gateway_message == "Access denied: session expired"
    assert "GET /iserver/accounts" in str(err) and "log in at" in str(err)
    assert scripted.count("/iserver/accounts") == 1  # auth is not retried by the transport


def test_truncated_body_is_retried_then_integrity_error(scripted: Scripted) -> None:
    scripted.on("/iserver/accounts", Reply(body=b'{"accounts": [', length=200))
    with transport(scripted) as t, pytest.raises(DataIntegrityError) as raised:
        t.request("GET", "/iserver/accounts")
    assert "/iserver/accounts" in str(raised.value)
    assert scripted.count("/iserver/accounts") == 4  # 1 + 3 retries


def test_non_json_then_good_body_succeeds(scripted: Scripted) -> None:
    scripted.on("/logout", Reply(body=b"garbage{"), Reply(body=b'{"status": true}'))
    events: list[ClientEvent] = []
    with transport(scripted, on_event=events.append) as t:
        assert t.request("POST", "/logout") == {"status": True}
    retries = [e for e in events if e.kind == "retry"]
    assert len(retries) == 1 and retries[0].details["cause"] == "malformed"


def test_empty_body_is_an_integrity_error(scripted: Scripted) -> None:
    scripted.on("/tickle", Reply(body=b""))
    t = transport(scripted, retry=RetryPolicy.no_retries())
    with t, pytest.raises(DataIntegrityError, match="empty body"):
        t.request("POST", "/tickle")


def test_500_then_success_is_retried(scripted: Scripted) -> None:
    scripted.on(
        "/iserver/marketdata/history",
        Reply(500, b'{"error": "internal"}'),
        Reply(503, b"Service Unavailable", content_type="text/plain"),
        Reply(body=b'{"data": []}'),
    )
    with transport(scripted) as t:
        assert t.request("GET", "/iserver/marketdata/history") == {"data": []}
    assert scripted.count("/iserver/marketdata/history") == 3


def test_5xx_exhausted_keeps_status_and_message(scripted: Scripted) -> None:
    scripted.on("/iserver/accounts", Reply(503, b"Service Unavailable", content_type="text/plain"))
    with transport(scripted) as t, pytest.raises(ApiError) as raised:
        t.request("GET", "/iserver/accounts")
    assert raised.value.status == 503
    assert raised.value.gateway_message == "Service Unavailable"
    assert raised.value.context["attempts"] == 4


@pytest.mark.parametrize(
    ("status", "body", "error", "gateway"),
    [
        (200, {"error": "No data."}, DataUnavailable, "No data."),
        (200, {"error": "no session"}, AuthenticationError, "no session"),
        (400, {"error": "Please query /accounts first"}, AccountsRequired, None),
        (400, {"error": "conid is invalid"}, ApiError, "conid is invalid"),
        (404, {"error": "not found"}, ApiError, "not found"),
    ],
)
def test_in_band_errors_are_typed_and_not_retried(
    scripted: Scripted, status: int, body: object, error: type[Exception], gateway: str | None
) -> None:
    scripted.on("/iserver/marketdata/history", Reply(status, json.dumps(body).encode()))
    with transport(scripted) as t, pytest.raises(error) as raised:
        t.request("GET", "/iserver/marketdata/history", params={"conid": 1})
    err = raised.value
    assert type(err) is error
    assert isinstance(err, ApiError)
    assert err.endpoint == "/iserver/marketdata/history"
    assert "/iserver/marketdata/history" in str(err)
    if gateway:
        assert err.gateway_message == gateway and gateway in str(err)
    assert scripted.count("/iserver/marketdata/history") == 1


def test_403_access_denied_hints_at_the_ip_allow_list(scripted: Scripted) -> None:
    scripted.on("/iserver/accounts", Reply(403, b"Access Denied", content_type="text/plain"))
    with transport(scripted) as t, pytest.raises(ApiError, match="ips") as raised:
        t.request("GET", "/iserver/accounts")
    assert raised.value.status == 403


def test_account_ids_and_tokens_never_reach_messages(scripted: Scripted) -> None:
    secret = "account DU1234567 with session 0123456789abcdef0123456789abcdef"
    scripted.on("/iserver/accounts", Reply(400, json.dumps({"error": secret}).encode()))
    with transport(scripted) as t, pytest.raises(ApiError) as raised:
        t.request("GET", "/iserver/accounts")
    text = str(raised.value) + str(raised.value.gateway_message)
    assert "DU1234567" not in text and "0123456789abcdef" not in text
    assert "<account>" in text and "<token>" in text


def test_post_always_sends_a_json_body(scripted: Scripted) -> None:
    scripted.on("/logout", Reply(body=b"{}"))
    with transport(scripted) as t:
        t.request("POST", "/logout")
        t.request("POST", "/logout", json={"a": 1})
    first, second = scripted.seen
    assert first.headers["Content-Length"] == "2" and first.body == b"{}"
    assert json.loads(second.body) == {"a": 1}


def test_read_timeout_is_a_request_timeout_while_the_answer_is_held(scripted: Scripted) -> None:
    """The server holds its answer until the test lets it go: only the 0.3 s read timeout can
    end the request, and it does so while the answer is still held."""
    release = threading.Event()
    held = Reply(hold=release, drop=True)
    scripted.on("/iserver/accounts", held)
    try:
        with transport(scripted, timeout=(2.0, 0.3), retry=RetryPolicy.no_retries()) as t:
            with pytest.raises(RequestTimeout) as raised:
                t.request("GET", "/iserver/accounts")
            assert held.held.is_set() and not release.is_set()  # no answer was ever sent
    finally:
        release.set()
    assert raised.value.timeout == 0.3
    assert isinstance(raised.value, TimeoutError)
    assert "0.3 s" in str(raised.value) and "/iserver/accounts" in str(raised.value)


def test_a_body_that_stalls_is_a_request_timeout_not_a_gateway_that_is_down(
    scripted: Scripted,
) -> None:
    """The gateway sends its headers and part of the body, then nothing: the read timeout ends
    the request. ``requests`` raises that as a ConnectionError; it is a timeout of an answer
    under way (the gateway is up), so the user is not asked whether it is running."""
    resume = threading.Event()
    stalled = Reply(body=b'{"accounts": [', length=200, stall=resume)
    scripted.on("/iserver/accounts", stalled)
    try:
        with transport(scripted, timeout=(2.0, 0.3), retry=RetryPolicy.no_retries()) as t:
            with pytest.raises(RequestTimeout) as raised:
                t.request("GET", "/iserver/accounts")
            assert not resume.is_set()  # the rest of the body was never sent
    finally:
        resume.set()
    assert isinstance(raised.value.__cause__, requests.exceptions.ConnectionError)
    assert raised.value.timeout == 0.3
    message = str(raised.value)
    assert "began answering" in message and "0.3 s" in message
    assert "/iserver/accounts" in message and "is the gateway running" not in message


def test_dropped_connection_is_a_connection_error(scripted: Scripted) -> None:
    scripted.on("/iserver/accounts", Reply(drop=True))
    with transport(scripted) as t, pytest.raises(GatewayConnectionError) as raised:
        t.request("GET", "/iserver/accounts")
    assert "is the gateway running at" in str(raised.value)
    assert isinstance(raised.value.__cause__, requests.exceptions.ConnectionError)
    assert scripted.count("/iserver/accounts") == 4


def test_connection_refused_on_a_closed_port(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    with Transport(url, retry=FAST) as t, pytest.raises(GatewayConnectionError) as raised:
        t.request("POST", "/iserver/auth/status")
    message = str(raised.value)
    assert "connection refused" in message
    assert f"is the gateway running at {url}?" in message
    assert isinstance(raised.value, ConnectionError)


def test_events_report_each_request_and_bad_listeners_are_ignored(
    scripted: Scripted, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.on("/iserver/accounts", Reply(500, b'{"error": "x"}'), Reply(body=b"[]"))
    events: list[ClientEvent] = []

    def broken(event: ClientEvent) -> None:
        raise RuntimeError("listener bug")

    with transport(scripted) as t:
        t.add_listener(broken)
        t.add_listener(events.append)
        with caplog.at_level(logging.DEBUG, logger="backtrader_ibkr_cp.client.transport"):
            assert t.request("GET", "/iserver/accounts", params={"acct": "U7654321"}) == []
    requests_seen = [e for e in events if e.kind == "request"]
    assert [e.details["status"] for e in requests_seen] == [500, 200]
    assert all(e.details["path"] == "/iserver/accounts" for e in requests_seen)
    assert all(e.details["seconds"] >= 0 for e in requests_seen)
    assert "listener bug" in caplog.text or "failed on a" in caplog.text
    assert "U7654321" not in caplog.text


def test_caller_session_is_used_and_not_closed(scripted: Scripted) -> None:
    scripted.on("/tickle", Reply(body=b"{}"))
    session = requests.Session()
    session.headers["X-Caller"] = "mine"
    with transport(scripted, session=session) as t:
        assert t.session is session
        t.request("POST", "/tickle")
    assert scripted.seen[0].headers["X-Caller"] == "mine"
    response = session.post(scripted.url + "/v1/api/tickle", json={}, timeout=5)
    assert response.status_code == 200  # still usable: the transport did not close it
    session.close()


def test_closed_transport_refuses_requests(scripted: Scripted) -> None:
    t = transport(scripted)
    t.close()
    t.close()
    with pytest.raises(TransportClosed, match="closed"):
        t.request("GET", "/iserver/accounts")


def test_close_ends_a_retry_wait_at_once(scripted: Scripted, fake_clock: FakeClock) -> None:
    """The retry wait runs on a clock the test never moves: only close() can end it."""
    scripted.on("/iserver/accounts", Reply(503, b"{}"))
    retry = RetryPolicy(backoff_factor=30.0, jitter=0.0)
    t = transport(scripted, retry=retry, clock=fake_clock)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            t.request("GET", "/iserver/accounts")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    fake_clock.wait_for_sleepers(1)  # the first answer came, the retry waits 10 s (the cap)
    t.close()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert fake_clock.waits == [10.0] and fake_clock.now() == 1000.0  # no time passed
    assert errors and isinstance(errors[0], ApiError) and errors[0].status == 503
    assert scripted.count("/iserver/accounts") == 1


def test_server_date_is_recorded(scripted: Scripted) -> None:
    scripted.on("/tickle", Reply(body=b"{}"))
    with transport(scripted) as t:
        assert t.server_date() is None
        t.request("POST", "/tickle")
        date = t.server_date()
    assert date is not None and date[0].tzinfo is not None


@pytest.mark.parametrize("timeout", [0, -1, (1.0,), (1.0, 0), "10", True])
def test_bad_timeouts(timeout: object) -> None:
    with pytest.raises(ConfigError, match="timeout"):
        Transport("https://localhost:5000", timeout=timeout)  # type: ignore[arg-type]


def test_path_must_be_absolute(scripted: Scripted) -> None:
    with transport(scripted) as t, pytest.raises(ConfigError, match="must start with '/'"):
        t.request("GET", "iserver/accounts")


def test_pacer_is_shared_and_counts(scripted: Scripted) -> None:
    scripted.on("/tickle", Reply(body=b"{}"))
    pacer = Pacer()
    with transport(scripted, pacer=pacer) as t:
        t.request("POST", "/tickle")
    assert pacer.sent == {"tickle": 1}
    assert pacer.in_flight("tickle") == 0


def test_close_ends_a_wait_for_the_pacer(scripted: Scripted, fake_clock: FakeClock) -> None:
    scripted.on("/iserver/accounts", Reply(body=b"[]"))
    pacer = Pacer(clock=fake_clock, random=lambda: 0.0)
    pacer.penalize(600.0)  # as after a 429: nobody may send for ten minutes
    t = transport(scripted, pacer=pacer)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            t.request("GET", "/iserver/accounts")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    fake_clock.wait_for_sleepers(1)  # the request waits out the penalty on the fake clock
    assert pacer.waiting == 1
    t.close()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert fake_clock.waits == [600.0] and fake_clock.now() == 1000.0  # ended by close()
    assert errors and isinstance(errors[0], TransportClosed)
    assert scripted.count("/iserver/accounts") == 0


def test_in_band_too_many_requests_also_holds_the_pacer(scripted: Scripted) -> None:
    scripted.on("/iserver/accounts", Reply(body=b'{"error": "Too many requests"}'))
    events: list[ClientEvent] = []
    pacer = Pacer(clock=FakeClock())
    retry = RetryPolicy(rate_limit_retries=0, rate_limit_wait=5.0)
    t = transport(scripted, pacer=pacer, retry=retry, on_event=events.append)
    with t, pytest.raises(RateLimitExceeded):
        t.request("GET", "/iserver/accounts")
    assert pacer.penalty_remaining == 5.0  # no time passes on the pacer's fake clock
    assert [e.details["penalty_seconds"] for e in events if e.kind == "rate_limited"] == [5.0]


class _ExplodingAdapter(requests.adapters.HTTPAdapter):
    """A transport adapter that fails with a foreign (non-requests) exception."""

    def send(self, *args: object, **kwargs: object) -> requests.Response:
        raise RuntimeError("no recording for GET /v1/api/iserver/accounts")


def _exploding_transport() -> Transport:
    session = requests.Session()
    session.mount("https://", _ExplodingAdapter())
    return Transport("https://127.0.0.1:5000", session=session, retry=RetryPolicy.no_retries())


def test_foreign_exception_propagates_without_a_mapper() -> None:
    transport = _exploding_transport()
    with pytest.raises(RuntimeError, match="no recording"):
        transport.request("GET", "/iserver/accounts")


def test_error_mapper_turns_foreign_exception_into_market_error() -> None:
    transport = _exploding_transport()
    transport.add_error_mapper(
        lambda exc: ConfigError(f"cassette miss: {exc}") if isinstance(exc, RuntimeError) else None
    )
    with pytest.raises(ConfigError, match="cassette miss: no recording") as info:
        transport.request("GET", "/iserver/accounts")
    assert isinstance(info.value.__cause__, RuntimeError)
