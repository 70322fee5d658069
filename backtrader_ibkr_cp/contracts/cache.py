"""The contract cache: search results in memory and, optionally, in ``contracts.json``.

File format (version 1)::

    {"version": 1,
     "entries": {"AAPL|STK": {"fetched_at": 1717600000.0,
                              "contracts": [{"contract_id": 265598, "symbol": "AAPL", ...}]}}}

``fetched_at`` is seconds since the epoch; an entry older than ``ttl`` seconds is not served
(and is dropped at the next write). The file is replaced atomically (temporary file in the
same folder + ``os.replace``), so a reader never sees half a file. A file that cannot be read
or parsed is ignored with a warning in the log and rewritten at the next write: the cache is
never a reason to fail.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from ..models.contract import Contract

__all__ = ["ContractCache"]

log = logging.getLogger(__name__)

_VERSION = 1
_FIELDS = {f.name for f in fields(Contract)}


def _contract(data: Any) -> Contract:
    if not isinstance(data, dict) or set(data) != _FIELDS:
        raise ValueError(f"not a contract: {str(data)[:80]}")
    if not isinstance(data["contract_id"], int) or isinstance(data["contract_id"], bool):
        raise ValueError(f"contract_id {data['contract_id']!r} is not an integer")
    if not all(isinstance(data[name], str) for name in _FIELDS - {"contract_id"}):
        raise ValueError(f"a text field is not a string: {str(data)[:80]}")
    return Contract(**data)


class ContractCache:
    """Search results by key (``"AAPL|STK"``), with their fetch time. Thread-safe."""

    def __init__(self, path: Path | None, *, ttl: float, clock: Callable[[], float]) -> None:
        self.path = path
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, tuple[Contract, ...]]] | None = None

    def get(self, key: str) -> list[Contract] | None:
        """The cached listings for ``key``, or None when absent or older than ``ttl``."""
        with self._lock:
            entry = self._loaded().get(key)
            if entry is None or self._clock() - entry[0] >= self.ttl:
                return None
            return list(entry[1])

    def put(self, key: str, contracts: Sequence[Contract]) -> None:
        """Store ``contracts`` for ``key`` as fetched now, and write the file (if any)."""
        with self._lock:
            entries = self._loaded()
            entries[key] = (self._clock(), tuple(contracts))
            self._write(entries)

    def by_conid(self, conid: int) -> Contract | None:
        """Any cached contract with ``conid`` (a conid names one contract for good)."""
        with self._lock:
            for _, contracts in self._loaded().values():
                for contract in contracts:
                    if contract.conid == conid:
                        return contract
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries = {}
            self._write(self._entries)

    def _loaded(self) -> dict[str, tuple[float, tuple[Contract, ...]]]:
        if self._entries is None:
            self._entries = self._read()
        return self._entries

    def _read(self) -> dict[str, tuple[float, tuple[Contract, ...]]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(document, dict) or document.get("version") != _VERSION:
                raise ValueError(f"not a version {_VERSION} contract cache")
            entries: dict[str, tuple[float, tuple[Contract, ...]]] = {}
            for key, entry in dict(document["entries"]).items():
                fetched = entry["fetched_at"]
                if isinstance(fetched, bool) or not isinstance(fetched, (int, float)):
                    raise ValueError(f"fetched_at {fetched!r} of {key!r} is not a number")
                entries[str(key)] = (float(fetched), tuple(map(_contract, entry["contracts"])))
            return entries
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "ignoring the contract cache %s (%s); contracts will be searched again and the "
                "file rewritten",
                self.path,
                exc,
            )
            return {}

    def _write(self, entries: dict[str, tuple[float, tuple[Contract, ...]]]) -> None:
        if self.path is None:
            return
        now = self._clock()
        document = {
            "version": _VERSION,
            "entries": {
                key: {"fetched_at": fetched, "contracts": [asdict(c) for c in contracts]}
                for key, (fetched, contracts) in sorted(entries.items())
                if now - fetched < self.ttl
            },
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(
                prefix=".contracts-", suffix=".tmp", dir=self.path.parent
            )
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(document, out, indent=1, sort_keys=True)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("could not write the contract cache %s: %s", self.path, exc)
