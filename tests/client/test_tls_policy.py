"""Gateway URL normalisation and TLS policy validation (no network)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from urllib3.exceptions import InsecureRequestWarning

from backtrader_ibkr_cp.client.tls import (
    InsecureGatewayWarning,
    TlsPolicy,
    is_loopback,
    normalize_base_url,
    silence_unverified_warning,
)
from backtrader_ibkr_cp.errors import ConfigError

FP = "AB:" * 31 + "CD"
FP_HEX = FP.replace(":", "").lower()


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost:5000",
        "https://localhost:5000/",
        "https://localhost:5000/v1/api",
        "https://localhost:5000/v1/api/",
        " https://LOCALHOST:5000 ",
    ],
)
def test_base_url_forms_normalise_to_the_api_root(url: str) -> None:
    assert normalize_base_url(url) == "https://localhost:5000/v1/api"


def test_base_url_keeps_a_proxy_prefix_and_ipv6() -> None:
    assert normalize_base_url("https://host.example/ibkr") == "https://host.example/ibkr/v1/api"
    assert normalize_base_url("https://[::1]:5000") == "https://[::1]:5000/v1/api"
    assert normalize_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/v1/api"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://localhost:5000",
        "localhost:5000",
        "https://",
        "https://localhost:99999",
        "https://user:pw@localhost:5000",
        "https://localhost:5000/?a=1",
        "https://localhost:5000/v1",
        "https://localhost:5000/v1/api/iserver/accounts",
        "",
    ],
)
def test_bad_urls_say_what_a_good_one_looks_like(url: str) -> None:
    with pytest.raises(ConfigError, match=r"use e\.g\. https://localhost:5000"):
        normalize_base_url(url)


def test_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="allow_insecure_http=True") as raised:
        TlsPolicy.build(None, "http://example.com")
    assert "in clear" in str(raised.value)
    policy = TlsPolicy.build(None, "http://example.com", allow_insecure_http=True)
    assert policy.base_url == "http://example.com/v1/api"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.5", False),
        ("gateway.example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_default_verify_skips_ca_checks_only_on_loopback() -> None:
    local = TlsPolicy.build(None, "https://127.0.0.1:5000")
    assert local.verify is False and local.unverified and local.loopback
    remote = TlsPolicy.build(None, "https://gateway.example.com:5000")
    assert remote.verify is True and not remote.unverified


@pytest.mark.parametrize(
    "verify",
    [f"sha256:{FP}", f"SHA256:{FP.lower()}", f"sha256:{FP_HEX}", f"sha256:{FP_HEX.upper()}"],
)
def test_fingerprint_forms(verify: str) -> None:
    policy = TlsPolicy.build(verify, "https://gateway.example.com:5000")
    assert policy.fingerprint == FP_HEX
    assert not policy.unverified


@pytest.mark.parametrize("verify", ["sha256:ABCD", "sha256:" + "zz" * 32, "sha256:"])
def test_bad_fingerprints(verify: str) -> None:
    with pytest.raises(ConfigError, match="64 hex digits"):
        TlsPolicy.build(verify, "https://localhost:5000")


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such CA bundle"):
        TlsPolicy.build(str(tmp_path / "missing.pem"), "https://localhost:5000")
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert TlsPolicy.build(bundle, "https://localhost:5000").verify == str(bundle)


def test_tls_settings_on_plain_http_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs an https://"):
        TlsPolicy.build(f"sha256:{FP}", "http://127.0.0.1:5000")


def test_verify_false_warns_once_for_a_remote_host_only() -> None:
    with pytest.warns(InsecureGatewayWarning, match="gateway.example.com"):
        policy = TlsPolicy.build(False, "https://gateway.example.com:5000")
    assert policy.unverified
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert TlsPolicy.build(False, "https://localhost:5000").unverified


def test_verify_must_be_a_known_type() -> None:
    with pytest.raises(ConfigError, match="verify="):
        TlsPolicy.build(5, "https://localhost:5000")  # type: ignore[arg-type]


def test_login_url() -> None:
    assert TlsPolicy.build(None, "https://localhost:5000/v1/api").login_url == (
        "https://localhost:5000"
    )


def _urllib3_warning(host: str) -> None:
    warnings.warn(
        f"Unverified HTTPS request is being made to host '{host}'. Adding certificate "
        "verification is strongly advised.",
        InsecureRequestWarning,
        stacklevel=1,
    )


def test_unverified_warning_is_silenced_for_that_host_only() -> None:
    silence_unverified_warning("127.0.0.1")
    silence_unverified_warning("127.0.0.1")  # idempotent
    _urllib3_warning("127.0.0.1")  # would raise under filterwarnings=error
    with pytest.raises(InsecureRequestWarning):
        _urllib3_warning("10.0.0.1")
    with pytest.raises(InsecureRequestWarning):
        _urllib3_warning("127.0.0.10")
