"""LockedTls: a TLS socket one thread reads while another writes, over real TLS on loopback.

The stress test is what found the need for it: through ``open_websocket`` about 2 wss
connections in 1,000 never saw the upgrade's answer (the reading thread was taking in the
server's TLS 1.3 session tickets while the caller sent the upgrade); with LockedTls none.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
from websockets.sync.server import ServerConnection, serve

from backtrader_ibkr_cp.client.tls import TlsPolicy
from backtrader_ibkr_cp.client.ws_connect import open_websocket
from backtrader_ibkr_cp.client.ws_tls import LockedTls
from backtrader_ibkr_cp.simulator.tls import process_certificate, server_context


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
def pair() -> Iterator[tuple[LockedTls, ssl.SSLSocket]]:
    """(client as LockedTls, server SSLSocket), handshaken over loopback TCP (TLS 1.3 with
    session tickets, as the simulator and IBKR's gateway serve it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[ssl.SSLSocket] = []

    def accept() -> None:
        raw, _ = listener.accept()
        accepted.append(server_context(process_certificate()).wrap_socket(raw, server_side=True))

    thread = threading.Thread(target=accept)
    thread.start()
    raw = socket.create_connection(listener.getsockname(), timeout=5)
    client = client_context().wrap_socket(raw, server_hostname="localhost")
    thread.join()
    listener.close()
    server = accepted[0]
    locked = LockedTls(client)
    yield locked, server
    locked.close()
    server.close()


def test_data_goes_both_ways_and_the_end_reads_empty(pair: tuple[LockedTls, ssl.SSLSocket]) -> None:
    client, server = pair
    assert client.version() == "TLSv1.3"  # attributes pass through to the TLS socket
    client.sendall(b"upgrade please")
    assert server.recv(100) == b"upgrade please"
    server.sendall(b"x" * 50_000)  # several TLS records: recv takes what TLS holds
    received = b""
    while len(received) < 50_000:
        received += client.recv(65536)
    assert received == b"x" * 50_000
    server.close()
    assert client.recv(100) == b""


def test_a_reader_waiting_on_a_quiet_socket_does_not_hold_up_a_send(
    pair: tuple[LockedTls, ssl.SSLSocket],
) -> None:
    client, server = pair
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(client.recv(100)))
    reader.start()  # blocks: nothing to read yet
    client.sendall(b"ping")  # would wait forever if the reader kept TLS while waiting
    assert server.recv(100) == b"ping"
    server.sendall(b"pong")
    reader.join(10)
    assert got == [b"pong"]


def test_a_timeout_bounds_a_read(pair: tuple[LockedTls, ssl.SSLSocket]) -> None:
    client, _ = pair
    client.settimeout(0.01)
    assert client.gettimeout() == 0.01
    with pytest.raises(TimeoutError):
        client.recv(100)


def test_shutdown_wakes_a_waiting_reader(pair: tuple[LockedTls, ssl.SSLSocket]) -> None:
    client, _ = pair
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(client.recv(100)))
    reader.start()
    client.shutdown(socket.SHUT_RDWR)
    reader.join(10)
    assert got == [b""]


@pytest.mark.slow
def test_a_thousand_wss_upgrades_each_get_their_answer() -> None:
    """Each connection: the server greets at once (as the gateway does) while the client sends
    its first command, both right after the handshake. Before LockedTls about 2 in 1,000
    hung until the upgrade timed out."""

    def greet(connection: ServerConnection) -> None:
        connection.send("hello")
        for message in connection:
            connection.send(f"ack {message}")

    with serve(greet, "127.0.0.1", 0, ssl=server_context(process_certificate())) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        port = server.socket.getsockname()[1]
        policy = TlsPolicy.build(None, f"https://127.0.0.1:{port}")
        failures: list[str] = []
        try:
            for number in range(1000):
                try:
                    connection = open_websocket(policy, "api=x", timeout=5, close_timeout=1)
                    with connection:
                        connection.send("sub")
                        assert connection.recv(timeout=5) == "hello"
                        assert connection.recv(timeout=5) == "ack sub"
                except Exception as error:
                    failures.append(f"{number}: {type(error).__name__}: {error}")
        finally:
            server.shutdown()
            thread.join()
    assert failures == []
