"""TLS policy over real HTTPS against the simulator's self-signed certificate.

``filterwarnings = error`` is on: any InsecureRequestWarning would fail these tests.
"""

from __future__ import annotations

import warnings

import pytest
from urllib3.exceptions import InsecureRequestWarning

from backtrader_ibkr_cp.client.api import ApiClient
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.tls import TlsError
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.errors import NetworkError
from backtrader_ibkr_cp.simulator import GatewaySimulator


def status_with(sim: GatewaySimulator, url: str | None = None, **kwargs: object) -> bool:
    with Transport(url or sim.url, **kwargs) as transport:  # type: ignore[arg-type]
        return ApiClient(transport).auth_status().authenticated


def test_default_on_loopback_works_without_any_warning(sim: GatewaySimulator) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert status_with(sim)
        assert status_with(sim, url=sim.url.replace("127.0.0.1", "localhost"))
    assert not [w for w in caught if issubclass(w.category, InsecureRequestWarning)]


def test_silencing_is_for_the_loopback_host_only(sim: GatewaySimulator) -> None:
    assert status_with(sim)
    with pytest.raises(InsecureRequestWarning):
        warnings.warn(
            "Unverified HTTPS request is being made to host 'gateway.example.com'. ...",
            InsecureRequestWarning,
            stacklevel=1,
        )


def test_pinned_fingerprint_works(sim: GatewaySimulator) -> None:
    assert status_with(sim, verify=sim.cert_fingerprint)
    bare = "sha256:" + sim.cert_fingerprint.split(":", 1)[1].replace(":", "").lower()
    assert status_with(sim, verify=bare)


def test_wrong_fingerprint_is_refused_naming_the_right_one(sim: GatewaySimulator) -> None:
    wrong = "sha256:" + ":".join(["00"] * 32)
    with pytest.raises(NetworkError) as raised:
        status_with(sim, verify=wrong, retry=RetryPolicy())
    err = raised.value
    assert isinstance(err, TlsError)
    message = str(err)
    assert "fingerprint mismatch" in message
    assert f"presented {sim.cert_fingerprint}" in message
    assert f"verify='{sim.cert_fingerprint}'" in message
    assert err.context["fingerprint_seen"] == sim.cert_fingerprint
    assert sum(sim.stats.requests.values()) == 0  # refused before any request, never retried


def test_ca_verification_against_the_self_signed_certificate_fails_helpfully(
    sim: GatewaySimulator,
) -> None:
    with pytest.raises(NetworkError) as raised:
        status_with(sim, verify=True)
    message = str(raised.value)
    assert isinstance(raised.value, TlsError)
    assert "verify=True" in message and "self-signed" in message
    assert "verify='sha256:<fingerprint>'" in message and "verify=None" in message


def test_the_gateways_certificate_as_ca_bundle_works(sim: GatewaySimulator) -> None:
    assert status_with(sim, verify=sim.cert_path)


def test_plain_http_on_loopback_works() -> None:
    with GatewaySimulator(tls=False) as plain:
        assert plain.url.startswith("http://")
        assert status_with(plain)


def test_https_to_a_plain_http_gateway_names_the_fix() -> None:
    with GatewaySimulator(tls=False) as plain:
        url = plain.url.replace("http://", "https://")
        with pytest.raises(TlsError, match="serves https on this port"):
            status_with(plain, url=url, retry=RetryPolicy.no_retries())
