"""The gateway URL and TLS policy: where to connect, and how far to trust the certificate.

The Client Portal Gateway serves HTTPS with a self-signed (and long expired) certificate, so:

- ``verify=None`` (default): a loopback gateway (``127.0.0.0/8``, ``::1``, ``localhost``) is
  used without CA verification, and urllib3's ``InsecureRequestWarning`` is silenced for that
  host only (never globally); any other host is verified against the system CAs.
- ``verify=True``: verify against the CAs (``REQUESTS_CA_BUNDLE`` or certifi).
- ``verify=False``: no verification; for a non-loopback host one
  :class:`InsecureGatewayWarning` is issued when the policy is built (instead of one
  ``InsecureRequestWarning`` per request).
- ``verify="/path/to/ca.pem"``: verify against that CA bundle (e.g. the gateway's own
  certificate).
- ``verify="sha256:AB:CD:..."``: pin the SHA-256 fingerprint of the gateway's leaf certificate
  (64 hex digits, colons optional, any case); any other certificate is refused.

Plain ``http://`` is allowed for loopback hosts (a simulator or a gateway behind a local
proxy) and refused for any other host unless ``allow_insecure_http=True``: it would send the
session cookie across the network in clear.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InsecureRequestWarning

from ..errors import ConfigError, TlsError

__all__ = [
    "API_ROOT",
    "InsecureGatewayWarning",
    "TlsError",
    "TlsPolicy",
    "is_loopback",
    "normalize_base_url",
]

#: The path under which the gateway serves the API.
API_ROOT = "/v1/api"
#: Connections kept per host by sessions this package creates (several feeds, a history pool
#: of up to 5 and the keep-alive thread share one client).
POOL_SIZE = 16

_EXAMPLE = "https://localhost:5000 (or https://localhost:5000/v1/api)"
_FINGERPRINT_PREFIX = "sha256:"
_MISMATCH = re.compile(r'Expected "([0-9a-fA-F:]+)", got "([0-9a-fA-F]+)"')
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})
_filter_lock = threading.Lock()


class InsecureGatewayWarning(UserWarning):
    """``verify=False`` was given for a gateway that is not on this machine."""


def is_loopback(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1`` (brackets and case ignored)."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _bad_url(url: object, why: str) -> ConfigError:
    return ConfigError(f"gateway URL {url!r} {why}; use e.g. {_EXAMPLE}")


def normalize_base_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """The API root for a gateway URL: ``https://localhost:5000``, ``https://localhost:5000/``
    and ``https://localhost:5000/v1/api`` all give ``https://localhost:5000/v1/api``.

    A path prefix (a reverse proxy) is kept: ``https://host/ibkr`` -> ``https://host/ibkr/v1/api``.
    Raises ConfigError for anything that is not ``http(s)://host[:port][/path]``, for
    credentials, a query or a fragment in the URL, for a path that names an endpoint, and for
    ``http://`` to a non-loopback host unless ``allow_insecure_http`` is True.
    """
    if not isinstance(url, str) or not url.strip():
        raise _bad_url(url, "is not a URL")
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _bad_url(url, f"cannot be parsed ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _bad_url(url, "must start with https:// (or http:// for a loopback gateway)")
    host = parts.hostname
    if not host:
        raise _bad_url(url, "has no host")
    if parts.username is not None or parts.password is not None:
        raise _bad_url(url, "must not contain credentials (log in on the gateway's page)")
    if parts.query or parts.fragment:
        raise _bad_url(url, "must not contain a query or fragment")
    if scheme == "http" and not is_loopback(host) and not allow_insecure_http:
        raise ConfigError(
            f"refusing plain http:// to {host!r}, which is not this machine: the session "
            f"cookie would cross the network in clear. Use https://{parts.netloc} or, if the "
            "link is protected otherwise (VPN, SSH tunnel), pass allow_insecure_http=True"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(API_ROOT):
        if "v1" in path.split("/"):
            raise _bad_url(url, f"has path {parts.path!r}; give the gateway root or {API_ROOT}")
        path += API_ROOT
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{path}"


def _parse_fingerprint(verify: str) -> str:
    digits = verify[len(_FINGERPRINT_PREFIX) :].replace(":", "").strip().lower()
    if len(digits) != 64 or not re.fullmatch(r"[0-9a-f]+", digits):
        raise ConfigError(
            f"verify={verify!r} is not a SHA-256 certificate fingerprint: expected 64 hex "
            "digits after 'sha256:' (colons optional), e.g. 'sha256:AB:CD:...:EF'; got "
            f"{len(digits)} characters"
        )
    return digits


def _colon_hex(digits: str) -> str:
    upper = digits.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


def silence_unverified_warning(host: str) -> None:
    """Make sure urllib3's ``InsecureRequestWarning`` for ``host`` (and only that host) is
    ignored: the first warning filter that matches it is ours. Cheap when it already is."""
    pattern = rf"Unverified HTTPS request is being made to host '\[?{re.escape(host)}\]?'"
    text = f"Unverified HTTPS request is being made to host '{host}'"
    with _filter_lock:
        for action, message, category, module, lineno in warnings.filters:
            if not issubclass(InsecureRequestWarning, category):
                continue
            if message is not None and not message.match(text):
                continue
            if module is not None and not module.match("urllib3.connectionpool"):
                continue
            if (
                action == "ignore"
                and message is not None
                and message.pattern == pattern
                and category is InsecureRequestWarning
                and lineno == 0
            ):
                return
            break
        warnings.filterwarnings("ignore", message=pattern, category=InsecureRequestWarning)


class PinnedAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections accept only a certificate with this SHA-256
    fingerprint (urllib3's ``assert_fingerprint``)."""

    def __init__(self, fingerprint: str, **kwargs: Any) -> None:
        self.fingerprint = fingerprint
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["assert_fingerprint"] = self.fingerprint
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)


@dataclass(frozen=True)
class TlsPolicy:
    """A validated gateway URL and TLS setting; build it with :meth:`build`.

    ``base_url`` is the API root (ends in ``/v1/api``); ``verify`` the value passed to
    ``requests`` on every request; ``fingerprint`` the pinned SHA-256 (lowercase hex, no colons)
    or None; ``setting`` the caller's ``verify`` argument as a string, for messages.
    """

    base_url: str
    host: str
    loopback: bool
    verify: bool | str
    fingerprint: str | None
    setting: str

    @classmethod
    def build(
        cls,
        verify: bool | str | os.PathLike[str] | None,
        base_url: str,
        allow_insecure_http: bool = False,
    ) -> TlsPolicy:
        """Validate ``verify`` and ``base_url`` together (see the module docstring).

        Raises ConfigError for a bad URL, plain http to a remote host, a CA bundle path that
        does not exist, a malformed fingerprint, or a TLS setting given for an http:// URL.
        """
        root = normalize_base_url(base_url, allow_insecure_http=allow_insecure_http)
        parts = urlsplit(root)
        host = (parts.hostname or "").lower()
        loopback = is_loopback(host)
        setting = repr(os.fspath(verify) if isinstance(verify, os.PathLike) else verify)
        if isinstance(verify, os.PathLike):
            verify = os.fspath(verify)
        if verify is not None and not isinstance(verify, (bool, str)):
            raise ConfigError(
                f"verify={verify!r} is not valid; use None, True, False, a CA bundle path or "
                "'sha256:<fingerprint>'"
            )
        if parts.scheme == "http":
            if isinstance(verify, str):
                raise ConfigError(
                    f"verify={verify!r} needs an https:// gateway URL, got {root!r}; use "
                    f"https://{parts.netloc}"
                )
            return cls(root, host, loopback, False, None, setting)
        if isinstance(verify, str):
            if verify.lower().startswith(_FINGERPRINT_PREFIX):
                return cls(root, host, loopback, False, _parse_fingerprint(verify), setting)
            if not os.path.exists(verify):
                raise ConfigError(
                    f"verify={verify!r}: no such CA bundle file or directory; pass the path of "
                    "the gateway's certificate (PEM), or pin it with verify='sha256:<fingerprint>'"
                )
            return cls(root, host, loopback, verify, None, setting)
        if verify is None:
            return cls(root, host, loopback, not loopback, None, setting)
        if verify is False and not loopback:
            warnings.warn(
                f"TLS verification is off for the gateway at {host!r}, which is not this "
                "machine: anyone on the path can read the session. Pin its certificate with "
                "verify='sha256:<fingerprint>' or pass a CA bundle instead",
                InsecureGatewayWarning,
                stacklevel=3,
            )
        return cls(root, host, loopback, verify, None, setting)

    @property
    def login_url(self) -> str:
        """The gateway's root (its login page), e.g. ``https://localhost:5000``."""
        return self.base_url[: -len(API_ROOT)]

    @property
    def unverified(self) -> bool:
        """True when requests go without CA verification and without a pinned fingerprint."""
        return self.verify is False and self.fingerprint is None

    def mount(self, session: requests.Session, *, own: bool) -> None:
        """Mount what this policy needs onto ``session``: the pinning adapter when a
        fingerprint is pinned, otherwise (only for a session we created, ``own=True``) an
        adapter with a pool large enough for several threads. A caller's adapters are kept
        unless pinning needs replacing them for the gateway's host."""
        prefix = self.login_url + "/"
        if self.fingerprint is not None:
            session.mount(
                prefix, PinnedAdapter(_colon_hex(self.fingerprint), pool_maxsize=POOL_SIZE)
            )
        elif own:
            session.mount(prefix, HTTPAdapter(pool_maxsize=POOL_SIZE))

    def before_request(self) -> None:
        """Per request: silence urllib3's unverified-request warning for this host only, when
        this policy deliberately does not verify (loopback default or ``verify=False``)."""
        if self.unverified and self.base_url.startswith("https:"):
            silence_unverified_warning(self.host)

    def failure(self, exc: BaseException, *, endpoint: str) -> TlsError:
        """The TlsError for a TLS failure ``exc`` on ``endpoint``, naming the fix."""
        text = str(exc)
        where = f"{self.login_url} ({endpoint})"
        mismatch = _MISMATCH.search(text)
        if mismatch and self.fingerprint is not None:
            seen = _colon_hex(mismatch.group(2))
            return TlsError(
                f"TLS certificate fingerprint mismatch for {where}: the gateway presented "
                f"sha256:{seen}, but verify= pins sha256:{_colon_hex(self.fingerprint)}. If "
                "this is your gateway (it may have made a new certificate), pin the new one "
                f"with verify='sha256:{seen}'; otherwise do not connect",
                endpoint=endpoint,
                fingerprint_seen=f"sha256:{seen}",
            )
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            hint = (
                "; for a gateway on this machine verify=None skips CA verification"
                if self.loopback
                else ""
            )
            reason = _reason(text)
            return TlsError(
                f"TLS certificate verification failed for {where} with verify={self.setting}"
                f"{f' ({reason})' if reason else ''}. The Client Portal Gateway's certificate "
                "is self-signed: pass verify='<path to the gateway certificate PEM>' or pin it "
                f"with verify='sha256:<fingerprint>'{hint}",
                endpoint=endpoint,
            )
        return TlsError(
            f"TLS handshake with {where} failed ({_reason(text) or type(exc).__name__}) with "
            f"verify={self.setting}: check that the gateway serves https on this port (use "
            "http:// only for a loopback gateway without TLS) and that verify= matches its "
            "certificate",
            endpoint=endpoint,
        )


def _reason(text: str) -> str:
    """The short OpenSSL reason inside a requests/urllib3 SSL error text."""
    match = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)(?: \(_ssl|\)|'|$)", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"SSLError\((.+?)\)\)", text)
    return match.group(1).strip("'\" ")[:120] if match else ""
