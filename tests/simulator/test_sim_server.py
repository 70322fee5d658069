"""HTTP/TLS plumbing: certificate, plain HTTP, 411, chunked bodies, redirects, stop, clock."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from backtrader_ibkr_cp.simulator import GatewaySimulator
from backtrader_ibkr_cp.timing import FakeClock
from tests.support.instants import TUESDAY_MORNING, UTC

ROOT = Path(__file__).resolve().parents[2]


def _peer_der(sim: GatewaySimulator) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_fingerprint_matches_the_served_certificate(sim: GatewaySimulator) -> None:
    der = _peer_der(sim)
    digest = hashlib.sha256(der).hexdigest().upper()
    assert sim.cert_fingerprint == "sha256:" + ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    assert ssl.PEM_cert_to_DER_cert(sim.cert_pem.decode()) == der
    assert Path(sim.cert_path).read_bytes() == sim.cert_pem


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_certificate_verifies_strictly_for_loopback_names(
    sim: GatewaySimulator, hostname: str
) -> None:
    context = ssl.create_default_context(cafile=sim.cert_path)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with (
        socket.create_connection(("127.0.0.1", sim.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=hostname) as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_untrusted_clients_fail_and_the_certificate_is_shared(sim: GatewaySimulator) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(sim.api_url + "/iserver/auth/status", verify=True, timeout=5)
    with GatewaySimulator(speed=0) as other:
        assert other.cert_fingerprint == sim.cert_fingerprint
        path = other.cert_path
    assert not os.path.exists(path)


def test_plain_http_and_gateway_proxy_headers(client_for: Any) -> None:
    with GatewaySimulator(speed=0, start=TUESDAY_MORNING, tls=False) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        assert sim.api_url == sim.url + "/v1/api"
        with pytest.raises(ValueError, match="plain HTTP"):
            _ = sim.cert_fingerprint
        client = client_for(sim)
        response = client.post("/iserver/auth/status", headers={"Cookie": "REGION=; USERID="})
        assert response.json()["authenticated"] is True
        assert "Secure" not in response.headers["Set-Cookie"]


def _raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ]
                if length and len(body) >= length[0]:
                    break
        return b"".join(chunks)


def test_post_without_content_length_is_411_and_chunked_bodies_work() -> None:
    with GatewaySimulator(speed=0, start=TUESDAY_MORNING, tls=False) as sim:
        answer = _raw_exchange(
            sim.port, b"POST /v1/api/iserver/auth/status HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 411")
        body = b'{"symbol": "IBM"}'
        chunked = (
            b"POST /v1/api/iserver/secdef/search HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(body[:5]):x}\r\n".encode()
            + body[:5]
            + b"\r\n"
            + f"{len(body[5:]):x}\r\n".encode()
            + body[5:]
            + b"\r\n0\r\n\r\n"
        )
        answer = _raw_exchange(sim.port, chunked)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b'"conid":"8314"' in answer


def test_root_redirects_to_login_and_unknown_paths_404(client: Any, sim: GatewaySimulator) -> None:
    response = requests.get(sim.url + "/", verify=sim.cert_path, allow_redirects=False, timeout=5)
    assert response.status_code == 302
    assert response.headers["Location"] == "/sso/Login?forwardTo=22&RL=1&ip2loc=on"
    assert requests.get(sim.url + "/nope", verify=sim.cert_path, timeout=5).status_code == 404
    assert client.get("/no/such/endpoint").status_code == 404
    assert sim.stats.requests["/"] == 1


@pytest.fixture
def baseline_threads() -> Iterator[set[threading.Thread]]:
    yield set(threading.enumerate())


def test_stop_leaves_no_thread_or_socket(baseline_threads: set[threading.Thread]) -> None:
    sim = GatewaySimulator(speed=0, start=TUESDAY_MORNING)
    sim.start()
    sim.start()  # idempotent
    session = requests.Session()  # keeps its connection alive after the request
    assert session.get(sim.api_url + "/tickle", verify=sim.cert_path, timeout=5).ok
    port = sim.port
    sim.stop()  # the kept-alive connection's thread would wait 300 s for a next request
    sim.stop()  # idempotent
    session.close()
    assert set(threading.enumerate()) - baseline_threads == set()  # so stop() cut it
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_speed_runs_the_market_clock_faster(fake_clock: FakeClock) -> None:
    """The market clock runs on the simulator's real clock (``monotonic``, here a fake one)
    at ``speed`` simulated seconds per real second."""
    with GatewaySimulator(speed=100, start=TUESDAY_MORNING, monotonic=fake_clock.now) as sim:
        assert sim.now() == TUESDAY_MORNING
        fake_clock.advance(0.2)
        assert sim.now() == TUESDAY_MORNING + timedelta(seconds=20)
        sim.set_time(datetime(2024, 1, 2, 15, 0))  # naive = UTC
        assert sim.now() == datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
        fake_clock.advance(0.5)
        assert sim.now() == datetime(2024, 1, 2, 15, 0, 50, tzinfo=UTC)  # it keeps running
    before = datetime.now(UTC)
    with GatewaySimulator(tls=False, monotonic=fake_clock.now) as real:  # starts at real now
        after = datetime.now(UTC)
        now = real.now()
        assert before <= now <= after
        assert real.advance(3600) == now + timedelta(hours=1) == real.now()


def test_latency_is_added_to_every_answer(client: Any, sim: GatewaySimulator) -> None:
    """With a latency far longer than the client waits for an answer, every answer comes
    too late (the requests themselves arrived)."""
    assert client.post("/iserver/auth/status").status_code == 200  # the connection is open
    sim.latency = 60.0
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.post("/iserver/auth/status", timeout=(10, 0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.get("/iserver/accounts", timeout=(10, 0.5))
    assert sim.stats.requests["/iserver/auth/status"] == 2
    assert sim.stats.requests["/iserver/accounts"] == 1
    sim.latency = 0.0
    assert client.get("/iserver/accounts").status_code == 200
    with pytest.raises(ValueError, match="latency"):
        sim.latency = -1


def test_only_loopback_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        GatewaySimulator(host="0.0.0.0")


def test_standalone_module_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backtrader_ibkr_cp.simulator",
            "--port",
            "0",
            "--no-tls",
            "--start",
            "2024-03-04T14:30:00Z",
            "--speed",
            "0",
            "--account",
            "U1234567",
            "--live",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1/api")
        response = requests.post(url + "/iserver/auth/status", timeout=5)
        assert response.json()["authenticated"] is True
        assert response.headers["Date"] == "Mon, 04 Mar 2024 14:30:00 GMT"
        accounts = requests.get(url + "/iserver/accounts", timeout=5).json()
        assert (accounts["selectedAccount"], accounts["isPaper"]) == ("U1234567", False)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def test_stats_count_requests_and_reset(client: Any, sim: GatewaySimulator) -> None:
    client.get("/iserver/accounts")
    client.snapshot("265598,8314", "31")
    client.history(bar="5min", period="1h", outsideRth="true")
    stats = sim.stats
    assert stats.requests["/iserver/accounts"] == 1
    assert stats.requests["/iserver/marketdata/snapshot"] == 1
    assert stats.snapshot_conids == [[265598, 8314]]
    assert stats.history_requests == [
        {"conid": "265598", "bar": "5min", "period": "1h", "outsideRth": "true"}
    ]
    assert stats.max_concurrent_history == 1 and stats.rate_limited == 0
    stats.reset()
    assert sum(stats.requests.values()) == 0 and stats.history_requests == []
