"""Where the shared pacing state lives: a folder, one file per gateway, and a lock.

:class:`FileStore` keeps a gateway's state in ``<dir>/<gateway>.json`` beside a lock file
``<gateway>.lock``; each transaction is one read-modify-write under ``fcntl.flock`` (held a few
hundred microseconds, never while waiting; the kernel releases it when its holder dies), and
the file is replaced atomically. ``<dir>`` is :func:`pacing_dir` (``$IBKR_CP_PACING_DIR`` or
the user cache folder), ``<gateway>`` is :func:`gateway_key` (host and port; every loopback
name is one host). :class:`MemoryStore` keeps the same state in this process only: a private
pacer's, or every pacer's on a platform without ``fcntl`` (a warning says so once).
:func:`open_store` picks one. :func:`pid_alive` tells whether the process of an entry runs.

The rules over the state are in :mod:`.pacing_ledger`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

try:  # POSIX
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: pacing stays per process
    _fcntl = None  # type: ignore[assignment]

__all__ = [
    "ENV_PACING_DIR",
    "STATE_VERSION",
    "FileStore",
    "LedgerStore",
    "MemoryStore",
    "gateway_key",
    "open_store",
    "pacing_dir",
    "pid_alive",
]

log = logging.getLogger(__name__)

#: Environment variable naming the folder of the shared pacing ledgers (read by
#: :func:`pacing_dir` only, never at import time).
ENV_PACING_DIR = "IBKR_CP_PACING_DIR"
#: The state format; a file of another version is started afresh.
STATE_VERSION = 1

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_DEFAULT_PORTS = {"https": 443, "http": 80}


def pacing_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder of the shared pacing ledgers: ``$IBKR_CP_PACING_DIR`` when set, else
    ``$XDG_CACHE_HOME/backtrader_ibkr_cp/pacing``, else ``~/.cache/backtrader_ibkr_cp/pacing``.
    Reads ``environ`` (default ``os.environ``) each call; creates nothing."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_PACING_DIR, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    cache = env.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "backtrader_ibkr_cp" / "pacing"


def gateway_key(url: str) -> str:
    """The name of a gateway's budget: ``host-port`` from a URL (``https://localhost:5000``,
    ``.../v1/api``) or a bare ``host:port``. Every loopback name (``localhost``, ``127.0.0.1``,
    ``::1``) is ``localhost``, since they reach one gateway; the scheme does not matter.
    ``"https://127.0.0.1:5000/v1/api"`` -> ``"localhost-5000"``."""
    text = url.strip()
    parts = urlsplit(text if "//" in text else f"//{text}")
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    if _is_loopback(host):
        host = "localhost"
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in host) or "unknown"
    return f"{safe}-{port}"


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie, killed but not yet reaped, is dead; a
    process of another user is alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): os.kill said it exists
    state = stat.rpartition(")")[2].split()
    return not (state and state[0] in ("Z", "X"))


# -- stores ---------------------------------------------------------------------------------


class LedgerStore(Protocol):
    """Where a ledger's state lives: :meth:`transaction` yields the state (a JSON-able dict)
    for one read-modify-write, exclusive across every user of the store."""

    shared: bool

    def transaction(self) -> contextlib.AbstractContextManager[dict[str, Any]]: ...


class MemoryStore:
    """State in this process only (``shared`` False)."""

    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            yield self._state


class FileStore:
    """State in ``<directory>/<key>.json``, changed under an exclusive ``flock`` of
    ``<directory>/<key>.lock`` (``shared`` True). The lock is taken per transaction (a fresh
    descriptor each time, so a forked child never shares its parent's lock) and the file is
    replaced atomically, so a writer killed mid-write leaves the previous state.

    Raises OSError when the folder cannot be created (:func:`open_store` then falls back to a
    :class:`MemoryStore`).
    """

    shared = True

    def __init__(self, directory: str | os.PathLike[str], key: str) -> None:
        if _fcntl is None:  # pragma: no cover - Windows
            raise OSError("fcntl.flock is not available on this platform")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = key
        self.path = self.directory / f"{key}.json"
        self.lock_path = self.directory / f"{key}.lock"
        self._tmp_path = self.directory / f".{key}.json.tmp"
        self._lock = threading.Lock()
        self._warned = False
        self._fallback = MemoryStore()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict[str, Any]]:
        assert _fcntl is not None
        with self._lock:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:  # the folder went away: pace in this process, say so once
                self._warn(f"cannot open {self.lock_path} ({exc})")
                with self._fallback.transaction() as state:
                    yield state
                return
            try:
                _fcntl.flock(fd, _fcntl.LOCK_EX)
                before = self._read()
                state = _loads(before, self.path)
                yield state
                after = json.dumps(state, separators=(",", ":"))
                if after != before:
                    self._write(after)
            finally:
                os.close(fd)  # releases the flock

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except OSError as exc:
            self._warn(f"cannot read {self.path} ({exc})")
            return ""

    def _write(self, text: str) -> None:
        try:
            with open(self._tmp_path, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(self._tmp_path, self.path)
        except OSError as exc:
            self._warn(f"cannot write {self.path} ({exc})")

    def _warn(self, what: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "shared pacing: %s; other processes may not see this one's requests. "
                "Point $%s at a writable folder.",
                what,
                ENV_PACING_DIR,
            )


def _loads(text: str, path: Path) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        state = json.loads(text)
    except ValueError:
        log.warning("shared pacing: %s is not valid JSON; starting it afresh", path)
        return {}
    if not isinstance(state, dict) or state.get("v") != STATE_VERSION:
        log.warning("shared pacing: %s has an unknown format; starting it afresh", path)
        return {}
    return state


_MEMORY_LOCK = threading.Lock()
_MEMORY_STORES: dict[str, MemoryStore] = {}
_WARNED_NO_FLOCK = False


def _memory_store_for(key: str, reason: str) -> MemoryStore:
    global _WARNED_NO_FLOCK
    with _MEMORY_LOCK:
        if not _WARNED_NO_FLOCK:
            _WARNED_NO_FLOCK = True
            log.warning(
                "shared pacing is off (%s): each process paces itself, so several programs "
                "using one gateway at once can exceed IBKR's limits (HTTP 429)",
                reason,
            )
        store = _MEMORY_STORES.get(key)
        if store is None:
            store = _MEMORY_STORES[key] = MemoryStore()
        return store


def open_store(key: str, directory: str | os.PathLike[str] | None = None) -> LedgerStore:
    """The store every process shares for gateway ``key`` (a :func:`gateway_key`) in
    ``directory`` (default :func:`pacing_dir`): a :class:`FileStore`, or, with a logged
    warning, a per-process :class:`MemoryStore` where ``flock`` is unavailable or the folder
    cannot be created."""
    if _fcntl is None:  # pragma: no cover - Windows
        return _memory_store_for(key, "fcntl.flock is not available on this platform")
    folder = Path(directory) if directory is not None else pacing_dir()
    try:
        return FileStore(folder, key)
    except OSError as exc:
        return _memory_store_for(key, f"cannot use {folder}: {exc}")
