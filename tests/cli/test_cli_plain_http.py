"""``http://`` to the gateway's HTTPS port says to use ``https://``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.cli.cli_process import ibkr_cp

#: A TLS alert record (fatal, unexpected_message): what a TLS server may send back to bytes
#: that are not a TLS handshake.
TLS_ALERT = b"\x15\x03\x03\x00\x02\x02\x0a"


@pytest.fixture
def tls_alert_port() -> Iterator[int]:
    """A loopback port that answers every connection's first bytes with a TLS alert."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(TLS_ALERT)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        server.close()
        thread.join(5)
        assert not thread.is_alive()


def test_http_to_the_https_simulator_says_use_https(sim: GatewaySimulator) -> None:
    plain = sim.url.replace("https://", "http://")
    result = ibkr_cp("status", "--gateway", plain)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert f"use {sim.url}" in result.stderr
    assert "is the gateway running" not in result.stderr


def test_a_tls_alert_answer_to_http_says_use_https(tls_alert_port: int) -> None:
    result = ibkr_cp("status", "--gateway", f"http://127.0.0.1:{tls_alert_port}")
    assert result.returncode == 1
    assert "answered with a TLS record" in result.stderr
    assert f"use https://127.0.0.1:{tls_alert_port}" in result.stderr


def test_a_closed_port_is_still_reported_as_not_running(closed_port: int) -> None:
    result = ibkr_cp("status", "--gateway", f"http://127.0.0.1:{closed_port}")
    assert result.returncode == 1
    assert "connection refused" in result.stderr and "is the gateway running" in result.stderr
