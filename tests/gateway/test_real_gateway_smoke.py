"""End to end through IBKR's real Client Portal Gateway: client -> real gateway -> simulator.

Plain ``requests`` on purpose: these tests pin what the real gateway does to requests and
answers, independently of our client.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.gateway.stack import GatewayStack

AAPL = 265598
HISTORY = "/iserver/marketdata/history"
#: Real seconds a test waits for what it started before it fails.
SETTLE = 30.0


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def test_auth_status_and_tickle_reach_the_simulator(
    stack: GatewayStack, http: requests.Session
) -> None:
    status = http.post(stack.api + "/iserver/auth/status", timeout=5)
    tickle = http.post(stack.api + "/tickle", timeout=5)

    assert status.status_code == 200
    assert status.headers["Content-Type"].startswith("application/json")
    assert status.json()["authenticated"] is True
    assert status.json()["connected"] is True
    assert tickle.status_code == 200
    assert tickle.json()["iserver"]["authStatus"]["authenticated"] is True
    requests_seen = stack.sim.stats.requests
    assert requests_seen["/iserver/auth/status"] == 1
    assert requests_seen["/tickle"] == 1


def test_secdef_search_lists_every_aapl_listing(
    stack: GatewayStack, http: requests.Session
) -> None:
    answer = http.get(stack.api + "/iserver/secdef/search", params={"symbol": "AAPL"}, timeout=5)

    assert answer.status_code == 200
    by_conid = {item["conid"]: item["description"] for item in answer.json()}
    assert by_conid == {"265598": "NASDAQ", "38708077": "MEXI", "273982664": "EBS"}


def test_answers_are_rechunked_and_keep_the_backends_headers(
    stack: GatewayStack, http: requests.Session
) -> None:
    answer = http.post(stack.api + "/iserver/auth/status", timeout=5)

    assert answer.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in answer.headers
    assert answer.headers["Server"].startswith("IBKRGatewaySimulator")
    # the Date header is the simulator's (frozen) clock: our server_time() can rely on it
    served = datetime.strptime(answer.headers["Date"], "%a, %d %b %Y %H:%M:%S GMT")
    assert served.replace(tzinfo=timezone.utc) == stack.sim.now()


@pytest.mark.parametrize(
    ("params", "start", "end"),
    [
        # today's session so far; the still-forming 10:00 bar is in the answer, not in truth
        ({"bar": "5min", "period": "1d"}, None, None),
        # Monday's full session, anchored at Monday 16:00 New York
        (
            {"bar": "1h", "period": "1d", "startTime": "20240304-21:00:00"},
            datetime(2024, 3, 4, 14, 30, tzinfo=timezone.utc),
            datetime(2024, 3, 4, 21, 0, tzinfo=timezone.utc),
        ),
    ],
)
def test_history_bars_equal_the_simulators_truth(
    stack: GatewayStack,
    http: requests.Session,
    params: dict[str, str],
    start: datetime | None,
    end: datetime | None,
) -> None:
    answer = http.get(
        stack.api + "/iserver/marketdata/history",
        params={"conid": str(AAPL), "outsideRth": "false", **params},
        timeout=10,
    )

    assert answer.status_code == 200, answer.text
    truth = stack.sim.truth("AAPL", params["bar"], start, end)
    assert len(truth) >= 6
    served = {row["t"]: row for row in answer.json()["data"]}
    for bar in truth:
        row = served.pop(_ms(bar.timestamp))
        assert (row["o"], row["h"], row["l"], row["c"]) == (bar.open, bar.high, bar.low, bar.close)
        assert row["v"] * 100 == pytest.approx(bar.volume)
    if start is None:  # only the forming bar is left over
        assert list(served) == [_ms(stack.sim.now().replace(second=0))]
    else:
        assert served == {}


def test_snapshot_preflight_then_fields(stack: GatewayStack, http: requests.Session) -> None:
    url = stack.api + "/iserver/marketdata/snapshot"
    params = {"conids": str(AAPL), "fields": "31,55,84,86,6509"}

    refused = http.get(url, params=params, timeout=5)
    http.get(stack.api + "/iserver/accounts", timeout=5)
    preflight = http.get(url, params=params, timeout=5)
    full = http.get(url, params=params, timeout=5)

    assert refused.status_code == 400
    assert refused.json() == {"error": "Please query /accounts first"}
    assert set(preflight.json()[0]) == {"conid", "conidEx"}
    fields = full.json()[0]
    assert fields["conid"] == AAPL
    assert fields["55"] == "AAPL"
    assert float(fields["84"]) < float(fields["86"])  # bid below ask
    assert fields["6509"] == "RpB"


def test_expired_session_answers_401_text_plain(
    stack: GatewayStack, http: requests.Session
) -> None:
    stack.sim.expire_session()

    answer = http.get(stack.api + "/iserver/accounts", timeout=5)

    assert answer.status_code == 401
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert "Unauthorized" in answer.text


@pytest.mark.parametrize(("kind", "status"), [("http_429", 429), ("http_503", 503)])
def test_injected_error_status_passes_through(
    stack: GatewayStack, http: requests.Session, kind: str, status: int
) -> None:
    stack.sim.inject(kind, path="/iserver/marketdata/history")

    answer = http.get(
        stack.api + "/iserver/marketdata/history",
        params={"conid": str(AAPL), "bar": "5min", "period": "1d"},
        timeout=5,
    )

    assert answer.status_code == status
    assert "error" in answer.json()
    if status == 429:
        assert answer.headers["Retry-After"] == "1"


def test_pacing_violation_through_the_gateway_gets_429_and_retry_after(
    private_stack: GatewayStack, http: requests.Session
) -> None:
    """The gateway forwards each request as it comes, so the simulator's 10/s limit bites."""
    statuses = [
        http.post(private_stack.api + "/iserver/auth/status", timeout=5).status_code
        for _ in range(12)
    ]
    penalized = http.post(private_stack.api + "/iserver/auth/status", timeout=5)

    assert statuses[:10] == [200] * 10
    assert 429 in statuses[10:]
    assert penalized.status_code == 429
    assert int(penalized.headers["Retry-After"]) > 500  # the simulator's 600 s penalty box


def test_gateway_keeps_at_most_five_requests_in_flight_to_the_backend(
    stack: GatewayStack,
) -> None:
    """Its HTTP client pools 5 connections to the backend: a 6th concurrent request waits in
    the gateway (no 429 for history concurrency, but a longer wait). The simulator holds the
    history answers at a gate until five are in flight: the sixth has not reached it then,
    and arrives once the five are answered."""
    url = stack.api + HISTORY
    params = {"conid": str(AAPL), "bar": "5min", "period": "1d"}

    def fetch(_: int) -> int:
        return requests.get(url, params=params, verify=False, timeout=SETTLE).status_code

    with ThreadPoolExecutor(6) as pool:
        with stack.sim.gate(HISTORY) as gate:
            answers = pool.map(fetch, range(6))
            assert gate.wait_held(5, SETTLE)
            assert stack.sim.stats.requests[HISTORY] == 5  # the sixth waits in the gateway
        statuses = list(answers)

    assert statuses == [200] * 6
    assert stack.sim.stats.requests[HISTORY] == 6
    assert stack.sim.stats.max_concurrent_history == 5


def test_malformed_body_is_forwarded_verbatim(stack: GatewayStack, http: requests.Session) -> None:
    stack.sim.inject("malformed", path="/iserver/marketdata/history")

    answer = http.get(
        stack.api + "/iserver/marketdata/history",
        params={"conid": str(AAPL), "bar": "5min", "period": "1d"},
        timeout=5,
    )

    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()


def test_backend_reset_becomes_a_client_timeout(
    stack: GatewayStack, http: requests.Session
) -> None:
    """The gateway swallows a backend RST and never answers: only a client timeout ends it."""
    stack.sim.inject("reset", path="/iserver/marketdata/history")

    with pytest.raises(requests.exceptions.ReadTimeout):  # not a reset, not an answer
        http.get(
            stack.api + "/iserver/marketdata/history",
            params={"conid": str(AAPL), "bar": "5min", "period": "1d"},
            timeout=(10, 1),
        )

    assert stack.sim.stats.requests[HISTORY] == 1 and stack.sim.pending_faults == 0
    # the gateway itself is fine afterwards
    assert http.post(stack.api + "/iserver/auth/status", timeout=5).status_code == 200


def test_reauthenticate_is_answered_by_the_gateway_itself(
    stack: GatewayStack, http: requests.Session
) -> None:
    """The real gateway keeps its own login state: with no IBKR login through it, it answers
    reauthenticate itself and never forwards it (the simulator sees no request)."""
    answer = http.post(stack.api + "/iserver/reauthenticate", timeout=5)

    assert answer.status_code == 200
    assert answer.json() == {"error": "not logged in"}
    assert stack.sim.stats.requests["/iserver/reauthenticate"] == 0


def test_stopped_simulator_means_no_answer_until_the_client_times_out(
    private_stack: GatewayStack, http: requests.Session
) -> None:
    sim, gw = private_stack
    sim.stop()

    with pytest.raises(requests.exceptions.ReadTimeout):  # no error page, no answer at all
        http.post(gw.url + "/v1/api/iserver/auth/status", timeout=(10, 3))

    home = http.get(gw.url + "/", allow_redirects=False, timeout=5)
    assert home.status_code == 302
    assert home.headers["Location"].startswith("/sso/Login")


def test_each_request_through_the_gateway_is_one_request_to_the_backend(
    stack: GatewayStack, http: requests.Session
) -> None:
    """The gateway adds no round trip of its own to a request: 21 requests through it reach
    the simulator as 21, answered as the simulator answers them directly. (What the gateway
    adds in milliseconds is a performance figure, for ``bench/``, not an assert here.)"""
    path = "/iserver/accounts"
    direct = [http.get(stack.sim.api_url + path, timeout=5).json() for _ in range(21)]
    assert stack.sim.stats.requests[path] == 21
    through = [http.get(stack.api + path, timeout=5).json() for _ in range(21)]
    assert stack.sim.stats.requests[path] == 42
    assert through == direct


def test_gateway_does_not_cache_answers(stack: GatewayStack, http: requests.Session) -> None:
    """The same GET after a simulator clock jump gets the new answer."""
    url = stack.api + "/iserver/marketdata/history"
    params = {"conid": str(AAPL), "bar": "1h", "period": "1d"}
    before = http.get(url, params=params, timeout=5).json()["data"]
    stack.sim.set_time(stack.sim.now() + timedelta(hours=1))

    after = http.get(url, params=params, timeout=5).json()["data"]

    assert len(after) == len(before) + 1  # 09:30, 10:00 (forming) -> 09:30, 10:00, 11:00
    assert after[-1]["t"] == _ms(datetime(2024, 3, 5, 16, 0, tzinfo=timezone.utc))
