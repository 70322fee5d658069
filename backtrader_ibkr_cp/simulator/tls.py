"""The simulator's self-signed TLS certificate (EC P-256, SAN 127.0.0.1 and localhost).

One key and certificate are generated per process and reused by every simulator, so starting
many simulators stays fast. The certificate is its own trust anchor: pass its file as the CA
bundle (``requests``' ``verify=sim.cert_path``) or pin its fingerprint
(``"sha256:AA:BB:..."``, SHA-256 of the DER leaf certificate, upper-case hex with colons).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateBundle", "fingerprint", "process_certificate", "server_context"]


@dataclass(frozen=True)
class CertificateBundle:
    """PEM certificate and PEM (unencrypted) private key of the simulator."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """``"sha256:AA:BB:..."`` of the DER certificate."""
        return fingerprint(self.cert_pem)


def fingerprint(cert_pem: bytes) -> str:
    """``"sha256:"`` + upper-case colon-separated hex SHA-256 of the DER form of ``cert_pem``."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    digest = hashlib.sha256(der).hexdigest().upper()
    return "sha256:" + ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _generate() -> CertificateBundle:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "backtrader_ibkr_cp gateway simulator"),
        ]
    )
    now = datetime.now(timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateBundle(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


_lock = threading.Lock()
_bundle: CertificateBundle | None = None


def process_certificate() -> CertificateBundle:
    """The process-wide certificate, generated on first use."""
    global _bundle
    with _lock:
        if _bundle is None:
            _bundle = _generate()
        return _bundle


def server_context(bundle: CertificateBundle) -> ssl.SSLContext:
    """A server-side TLS context serving ``bundle`` (TLS 1.2+).

    The key is written to a private temporary file only while OpenSSL loads it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="ibkr-sim-key-") as directory:
        cert_file = os.path.join(directory, "cert.pem")
        key_file = os.path.join(directory, "key.pem")
        with open(cert_file, "wb") as handle:
            handle.write(bundle.cert_pem)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(bundle.key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context
