"""The store's contracts and its root marker: small JSON files beside the bars.

``conid=N/_contract.json`` keeps the :class:`Contract` the bars belong to, so a run the store
covers needs no gateway, not even to turn ``"AAPL"`` into a conid. ``_barstore.json`` at the
root names the format and its version. Both are written atomically and carry the format
version; a newer version is refused like a newer Parquet file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, fields
from typing import Any

from ..contracts.resolver import AmbiguousContract
from ..contracts.spec import GRAMMAR, ContractSpec
from ..errors import BarStoreCorrupt, BarStoreError, BarStoreLookupError
from ..models.contract import Contract
from .files import StoreFiles
from .layout import CONTRACT_FILE, ROOT_FILE, conid_dir, parse_conid_dir
from .schema import FORMAT_NAME, FORMAT_VERSION, check_version

__all__ = ["Catalog"]

log = logging.getLogger(__name__)

_FIELDS = {f.name for f in fields(Contract)}


def _json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


class Catalog:
    """Reads and writes the contract files and the root marker of one store."""

    def __init__(self, files: StoreFiles) -> None:
        self.files = files
        self._root_checked = False

    # -- the root marker -------------------------------------------------------------------

    def check_root(self) -> None:
        """Raise if the root marker names another format or a newer version (once per
        instance; a store without a marker yet is fine)."""
        if self._root_checked:
            return
        raw = self.files.read_bytes(ROOT_FILE)
        if raw is not None:
            self._decode(raw, ROOT_FILE)
        self._root_checked = True

    def ensure_root(self) -> None:
        """Write the root marker if the store has none (identical content from every writer)."""
        self.check_root()
        if self.files.read_bytes(ROOT_FILE) is None:
            self.files.write(ROOT_FILE, _json({"format": FORMAT_NAME, "version": FORMAT_VERSION}))

    def _decode(self, raw: bytes, rel: str) -> dict[str, Any]:
        where = self.files.where(rel)
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise BarStoreCorrupt(
                f"bar store file {where} is not a bar store file (unreadable JSON or another "
                "format); move it away, or use another store folder",
                path=where,
            )
        check_version(data.get("version"), where)
        return data

    # -- contracts -------------------------------------------------------------------------

    def get(self, conid: int) -> Contract | None:
        """The stored contract of ``conid``, or None."""
        rel = f"{conid_dir(conid)}/{CONTRACT_FILE}"
        raw = self.files.read_bytes(rel)
        if raw is None:
            return None
        data = self._decode(raw, rel).get("contract")
        if not isinstance(data, dict) or set(data) != _FIELDS or data["contract_id"] != conid:
            where = self.files.where(rel)
            raise BarStoreCorrupt(
                f"bar store file {where} does not hold the contract of conid {conid}; move it "
                "away and fill the series again",
                path=where,
            )
        return Contract(**data)

    def put(self, contract: Contract) -> None:
        """Store ``contract`` (unless the same is stored already). A corrupt contract file is
        replaced (it holds nothing but the contract); one of a newer format is refused."""
        try:
            if self.get(contract.conid) == contract:
                return
        except BarStoreCorrupt as exc:
            log.warning("replacing an unreadable contract file: %s", exc)
        data = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "contract": asdict(contract)}
        self.files.write(f"{conid_dir(contract.conid)}/{CONTRACT_FILE}", _json(data))

    def conids(self) -> list[int]:
        """Every conid with a folder in the store, ascending."""
        found = (parse_conid_dir(name) for name in self.files.listdir(""))
        return sorted(conid for conid in found if conid is not None)

    def all(self) -> tuple[list[Contract], list[BarStoreError]]:
        """Every stored contract, and the errors of contract files that cannot be read
        (skipped, so one bad file does not hide the other contracts)."""
        found: list[Contract] = []
        problems: list[BarStoreError] = []
        for conid in self.conids():
            try:
                contract = self.get(conid)
            except BarStoreError as exc:
                log.warning("skipped an unreadable contract file: %s", exc)
                problems.append(exc)
                continue
            if contract is not None:
                found.append(contract)
        return found, problems

    def find(self, value: str | int) -> Contract:
        """The stored contract ``value`` names: a conid, or a spec (``"AAPL"``,
        ``"AAPL-STK-NASDAQ-USD"``) chosen among stored contracts the way the gateway resolver
        chooses among listings (no currency given: USD listings preferred)."""
        spec = ContractSpec.parse(value)
        if spec.conid is not None:
            found = self.get(spec.conid)
            if found is None:
                raise self._missing(str(spec.conid), (), ())
            return found
        stored, problems = self.all()
        matching = [c for c in stored if spec.matches(c)]
        if not spec.currency:
            matching = [c for c in matching if c.currency.upper() == "USD"] or matching
        if len(matching) == 1:
            return matching[0]
        if not matching:
            raise self._missing(str(spec), stored, problems)
        lines = "\n  ".join(f"{c.spec()} (conid {c.conid})" for c in matching)
        raise AmbiguousContract(
            f"{spec} matches {len(matching)} contracts in the bar store {self.files.where()}:"
            f"\n  {lines}\npass a fuller spec ({GRAMMAR.split(' (')[0]}) or the conid",
            spec=str(spec),
            candidates=matching,
        )

    def _missing(
        self, spec: str, stored: Sequence[Contract], problems: Sequence[BarStoreError]
    ) -> BarStoreLookupError:
        held = ", ".join(sorted({c.symbol for c in stored})) or "none"
        unread = ""
        if problems:
            unread = f"; unreadable: {', '.join(str(p.path) for p in problems)}"
        return BarStoreLookupError(
            f"the bar store {self.files.where()} holds no contract for {spec!r} (it holds: "
            f"{held}{unread}); fill it first (`ibkr-cp store fill {spec} ...`) or pass a conid",
            path=self.files.where(),
            spec=spec,
        )
