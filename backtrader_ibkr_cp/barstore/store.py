"""``BarStore``: completed bars at rest in Parquet, fetched once and read many times.

Threading and processes: a :class:`BarStore` holds no open files and no cache, so one object
may be used from several threads, and any number of processes on one machine may open the
same folder at once (sweep workers, two terminals). Writers of one series take its lock file
and replace whole files atomically; readers take no lock and always see complete files (see
:mod:`.files`). On an object store (``s3://`` ...) there are no locks: one writer at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.fs as pafs

from ..errors import BarStoreError, ConfigError
from ..models.bar import Bar, BarValidator
from ..models.contract import Contract
from ..models.timeframe import Timeframe
from .catalog import Catalog
from .columns import BarColumns
from .files import StoreFiles, open_files
from .horizon import can_hold_bars, complete_until
from .layout import SeriesKey, parse_bar_dir, parse_hours_dir, parse_year_dir, year_span, years
from .location import default_location
from .parts import read_part, replace_part
from .schema import between, empty_table
from .spans import Span, merge, subtract, to_ms

__all__ = ["BarStore", "ContractLike", "SeriesInfo"]

#: What names a series' contract: a :class:`Contract`, a conid, or a spec string the store
#: resolves among the contracts it holds (``"AAPL"``, ``"IBM-STK-NYSE"``).
ContractLike = Contract | int | str


@dataclass(frozen=True)
class SeriesInfo:
    """One stored series, as ``ibkr-cp store ls`` shows it.

    ``coverage``: the spans held (bar start times, UTC). ``bars``: how many bars. ``problem``:
    why a file of the series cannot be read (None when all are fine).
    """

    key: SeriesKey
    contract: Contract | None
    coverage: tuple[Span, ...]
    bars: int
    problem: str | None = None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BarStore:
    """A Parquet bar store: per contract, bar size and hours, the completed bars fetched so
    far and the spans they cover.

    Args:
        path: a folder (created on the first write), a URI ``pyarrow.fs`` understands
            (``file:///data/bars``, ``s3://bucket/prefix``), a ``pyarrow.fs.FileSystem`` (the
            store is its root), or a path inside ``filesystem``.
        filesystem: the ``pyarrow.fs.FileSystem`` ``path`` lies in (optional).
        settle: seconds after a bar's end before the store counts it complete (default 60):
            IBKR's history can lag the clock at a bar's close, and a bar missing from a span
            marked as fetched would never be asked again.
        clock: the current time (tz-aware) used when ``now`` is not passed; default this
            machine's clock. Pass the gateway's (``GatewayClient.server_time``) when it
            differs.

    Spans are half-open ``[start, end)`` on bar *start* times, tz-aware, millisecond
    resolution. A write replaces everything the store held inside its span, so a re-fetched
    (corrected) bar replaces the old one, and an empty write (a holiday) is remembered.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | pafs.FileSystem,
        *,
        filesystem: pafs.FileSystem | None = None,
        settle: float = 60.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if isinstance(path, pafs.FileSystem):
            filesystem, path = path, ""
        if isinstance(settle, bool) or not isinstance(settle, (int, float)) or settle < 0:
            raise ConfigError(f"settle {settle!r} is invalid; use seconds >= 0 (default 60)")
        self._files: StoreFiles = open_files(path, filesystem)
        self._catalog = Catalog(self._files)
        self.settle = float(settle)
        self.clock = clock or _utc_now

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **kwargs: object) -> BarStore:
        """The store at ``$IBKR_CP_BAR_STORE``, else the user's data folder (see
        :func:`~backtrader_ibkr_cp.barstore.location.default_location`)."""
        return cls(default_location(environ), **kwargs)  # type: ignore[arg-type]

    @property
    def location(self) -> str:
        """The store's folder or URI."""
        return self._files.where()

    # -- contracts -------------------------------------------------------------------------

    def contract(self, conid_or_symbol: ContractLike) -> Contract:
        """The stored contract for a conid or a spec (``"AAPL"``): no gateway involved.

        BarStoreLookupError when the store holds none; AmbiguousContract when a spec matches
        several stored contracts.
        """
        self._catalog.check_root()
        if isinstance(conid_or_symbol, Contract):
            conid_or_symbol = conid_or_symbol.conid
        return self._catalog.find(conid_or_symbol)

    def contracts(self) -> list[Contract]:
        """Every contract the store holds (an unreadable contract file is skipped and logged
        at WARNING)."""
        self._catalog.check_root()
        return self._catalog.all()[0]

    def put_contract(self, contract: Contract) -> None:
        """Store ``contract``'s details (``write`` does it too)."""
        self._catalog.ensure_root()
        self._catalog.put(contract)

    # -- time ------------------------------------------------------------------------------

    def horizon(
        self, timeframe: Timeframe | str, *, outside_rth: bool = False, now: datetime | None = None
    ) -> datetime:
        """The instant (UTC) before which every bar is complete and settled at ``now`` (the
        gateway's clock; default ``clock()``): the store holds nothing at or after it."""
        tf = Timeframe.parse(timeframe)
        moment = now if now is not None else self.clock()
        to_ms(moment, name="now")  # tz-aware check
        return complete_until(moment - timedelta(seconds=self.settle), tf, outside_rth=outside_rth)

    # -- reading ---------------------------------------------------------------------------

    def coverage(
        self, contract_or_conid: ContractLike, timeframe: Timeframe | str, outside_rth: bool = False
    ) -> list[Span]:
        """The spans the store holds for the series, merged and sorted."""
        key = self._key(contract_or_conid, timeframe, outside_rth)
        held: list[Span] = []
        for year in self._years(key):
            part = read_part(self._files, key, year, with_table=False)
            if part is not None:
                held.extend(part.meta.coverage)
        return merge(held)

    def missing(
        self,
        contract_or_conid: ContractLike,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        outside_rth: bool = False,
        now: datetime | None = None,
    ) -> list[Span]:
        """The spans of ``[start, end)`` still to fetch at ``now`` (default ``clock()``).

        Gaps in the coverage, and the open end up to :meth:`horizon` (a bar not complete at
        ``now`` is never stored, so it is not asked for yet). Gaps in which no bar can start
        (a night, a weekend) are left out. Empty when the store holds the whole span.
        """
        tf = Timeframe.parse(timeframe)
        wanted = Span.of_ms(to_ms(start, name="start"), to_ms(end, name="end", ceil=True))
        limit = to_ms(self.horizon(tf, outside_rth=outside_rth, now=now))
        if limit <= wanted.start_ms:
            return []
        wanted = Span.of_ms(wanted.start_ms, min(wanted.end_ms, limit))
        gaps = subtract(wanted, self.coverage(contract_or_conid, tf, outside_rth))
        return [gap for gap in gaps if can_hold_bars(gap, tf, outside_rth=outside_rth)]

    def read_table(
        self,
        contract_or_conid: ContractLike,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
        outside_rth: bool = False,
    ) -> pa.Table:
        """The stored bars starting in ``[start, end)`` (None: unbounded) as an Arrow table:
        ``timestamp`` (timestamp[ms, UTC], bar start), ``open``, ``high``, ``low``, ``close``,
        ``volume`` (float64, shares), sorted by time."""
        key = self._key(contract_or_conid, timeframe, outside_rth)
        lo = to_ms(start, name="start") if start is not None else None
        hi = to_ms(end, name="end", ceil=True) if end is not None else None
        tables = []
        for year in self._years(key):
            bounds = year_span(year)
            if (hi is not None and bounds.start_ms >= hi) or (
                lo is not None and bounds.end_ms <= lo
            ):
                continue
            part = read_part(self._files, key, year, with_table=True)
            if part is not None and part.table is not None:
                tables.append(between(part.table, lo, hi))
        if not tables:
            return empty_table()
        return pa.concat_tables(tables).replace_schema_metadata(None)

    def read_columns(
        self,
        contract_or_conid: ContractLike,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
        outside_rth: bool = False,
    ) -> BarColumns:
        """Like :meth:`read_table`, as numpy arrays (:class:`BarColumns`) for a feed to load
        in one pass."""
        tf = Timeframe.parse(timeframe)
        table = self.read_table(contract_or_conid, tf, start, end, outside_rth)
        return BarColumns.from_table(table, tf, outside_rth)

    def read(
        self,
        contract_or_conid: ContractLike,
        timeframe: Timeframe | str,
        start: datetime | None = None,
        end: datetime | None = None,
        outside_rth: bool = False,
    ) -> list[Bar]:
        """The stored bars starting in ``[start, end)`` as :class:`Bar` objects, sorted."""
        return self.read_columns(contract_or_conid, timeframe, start, end, outside_rth).to_bars()

    # -- writing ---------------------------------------------------------------------------

    def write(
        self,
        contract: ContractLike,
        timeframe: Timeframe | str,
        bars: Sequence[Bar],
        *,
        span: tuple[datetime, datetime] | Span,
        outside_rth: bool = False,
        now: datetime | None = None,
    ) -> Span | None:
        """Record that ``span`` was fetched and ``bars`` are all the bars starting in it.

        Every bar the store held in ``span`` is replaced (a corrected bar replaces the old
        one; an empty ``bars`` marks a holiday as fetched). ``contract`` is stored beside the
        bars (a conid or spec must name a contract the store holds already). The part of
        ``span`` at or after :meth:`horizon` at ``now`` is not recorded and bars there are
        dropped (they may not be complete). Returns the span recorded, or None.

        Errors: DataIntegrityError for an invalid bar or two different bars with one
        timestamp; ConfigError for a bar outside ``span``; BarStoreError subclasses when a
        file cannot be read or written (the series is then unchanged, except that a span
        crossing a new year may have its earlier year written).
        """
        tf = Timeframe.parse(timeframe)
        if isinstance(span, tuple):
            span = Span(*span)
        whole = Span.of_ms(to_ms(span.start, ceil=True), to_ms(span.end))
        stored = contract if isinstance(contract, Contract) else self.contract(contract)
        checked = _checked_bars(bars, whole)
        limit = to_ms(self.horizon(tf, outside_rth=outside_rth, now=now))
        recorded = (
            Span.of_ms(whole.start_ms, min(whole.end_ms, limit)) if limit > whole.start_ms else None
        )
        key = SeriesKey(stored.conid, tf, outside_rth)
        with self._files.lock(key.folder):
            self._catalog.ensure_root()
            self._catalog.put(stored)
            if recorded is None:
                return None
            kept = [bar for bar in checked if recorded.contains(bar.timestamp)]
            for year in years(recorded):
                piece = recorded.intersection(year_span(year))
                assert piece is not None
                replace_part(
                    self._files, key, year, piece, [b for b in kept if piece.contains(b.timestamp)]
                )
        return recorded

    # -- listing ---------------------------------------------------------------------------

    def series(self) -> list[SeriesInfo]:
        """Every series in the store. A series with an unreadable file is listed with its
        ``problem`` instead of failing the listing."""
        self._catalog.check_root()
        found: list[SeriesInfo] = []
        for conid in self._catalog.conids():
            contract_problem: str | None = None
            try:
                contract: Contract | None = self._catalog.get(conid)
            except BarStoreError as exc:
                contract, contract_problem = None, str(exc)
            base = f"conid={conid}"
            for bar_dir in self._files.listdir(base):
                tf = parse_bar_dir(bar_dir)
                if tf is None:
                    continue
                for hours_dir in self._files.listdir(f"{base}/{bar_dir}"):
                    outside_rth = parse_hours_dir(hours_dir)
                    if outside_rth is not None:
                        key = SeriesKey(conid, tf, outside_rth)
                        found.append(self._info(key, contract, contract_problem))
        return found

    def _info(self, key: SeriesKey, contract: Contract | None, problem: str | None) -> SeriesInfo:
        held: list[Span] = []
        rows = 0
        try:
            for year in self._years(key):
                part = read_part(self._files, key, year, with_table=False)
                if part is not None:
                    held.extend(part.meta.coverage)
                    rows += part.rows
        except BarStoreError as exc:
            problem = str(exc)
        return SeriesInfo(key, contract, tuple(merge(held)), rows, problem)

    # -- internals -------------------------------------------------------------------------

    def _key(
        self, contract_or_conid: ContractLike, timeframe: Timeframe | str, outside_rth: bool
    ) -> SeriesKey:
        tf = Timeframe.parse(timeframe)
        self._catalog.check_root()
        if isinstance(contract_or_conid, Contract):
            conid = contract_or_conid.conid
        elif isinstance(contract_or_conid, int) and not isinstance(contract_or_conid, bool):
            conid = contract_or_conid
        else:
            conid = self._catalog.find(contract_or_conid).conid
        return SeriesKey(conid, tf, bool(outside_rth))

    def _years(self, key: SeriesKey) -> list[int]:
        found = (parse_year_dir(name) for name in self._files.listdir(key.folder))
        return sorted(year for year in found if year is not None)

    def __repr__(self) -> str:
        return f"BarStore({self.location!r})"


def _checked_bars(bars: Sequence[Bar], span: Span) -> list[Bar]:
    """Valid bars, sorted and unique, all inside ``span`` and on whole milliseconds."""
    checked = BarValidator(strict=True).validate(bars)
    for bar in checked:
        if bar.timestamp.microsecond % 1000:
            raise ConfigError(f"bar {bar.describe()} is not stamped on a whole millisecond")
    if checked and not (
        span.contains(checked[0].timestamp) and span.contains(checked[-1].timestamp)
    ):
        odd = next(b for b in checked if not span.contains(b.timestamp))
        raise ConfigError(
            f"bar {odd.describe()} starts outside the span {span} being written; a write "
            "replaces exactly its span, so pass bars from inside it"
        )
    return checked
