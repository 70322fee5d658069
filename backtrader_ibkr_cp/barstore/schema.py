"""The Parquet file format of the bar store: columns, metadata, format version.

One file holds one partition (one UTC year) of one series (conid, bar size, hours)::

    timestamp  timestamp[ms, tz=UTC]  bar start, strictly increasing
    open high low close  double       prices in the listing's currency
    volume               double       shares

and, in the Parquet key-value metadata under :data:`META_KEY`, a JSON object::

    {"format": "backtrader_ibkr_cp.barstore", "version": 1, "conid": 265598, "bar": "5min",
     "outside_rth": false, "year": 2024, "coverage": [[start_ms, end_ms], ...]}

``coverage`` lists the spans of bar start times fetched into this file (epoch milliseconds,
half-open, sorted, disjoint, inside the year): a span without bars (a holiday) is held as
fetched, and every bar of the file lies inside a span. Bars and coverage live in one file and
are replaced together, so they always agree. A reader refuses a file whose ``version`` is newer
than :data:`FORMAT_VERSION` (:class:`BarStoreVersionError`) and any file that is not of this
shape (:class:`BarStoreCorrupt`), naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import BarStoreCorrupt, BarStoreVersionError
from ..models.bar import Bar
from .spans import Span, merge, to_ms

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "META_KEY",
    "SCHEMA",
    "PartMeta",
    "bars_table",
    "check_table",
    "empty_table",
    "parse_meta",
    "serialize",
]

#: The format written into every file and the store's root marker.
FORMAT_NAME = "backtrader_ibkr_cp.barstore"
#: The newest format version this package reads, and the one it writes.
FORMAT_VERSION = 1
#: The Parquet key-value metadata key holding :class:`PartMeta` as JSON.
META_KEY = b"backtrader_ibkr_cp.barstore"

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
SCHEMA = pa.schema(
    [pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False)]
    + [pa.field(name, pa.float64(), nullable=False) for name in PRICE_COLUMNS]
)

_REMEDY = "move the file away (or delete it) and fill its span again with `ibkr-cp store fill`"


@dataclass(frozen=True, slots=True)
class PartMeta:
    """What a partition file says about itself (see the module docstring)."""

    conid: int
    bar: str
    outside_rth: bool
    year: int
    coverage: tuple[Span, ...]
    version: int = FORMAT_VERSION

    def to_bytes(self) -> bytes:
        data = {
            "format": FORMAT_NAME,
            "version": self.version,
            "conid": self.conid,
            "bar": self.bar,
            "outside_rth": self.outside_rth,
            "year": self.year,
            "coverage": [[s.start_ms, s.end_ms] for s in self.coverage],
        }
        return json.dumps(data, separators=(",", ":")).encode()


def _corrupt(where: str, why: str) -> BarStoreCorrupt:
    return BarStoreCorrupt(f"bar store file {where} {why}; {_REMEDY}", path=where)


def check_version(version: object, where: str) -> None:
    """Raise unless ``version`` is a format version this package reads."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _corrupt(where, f"has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise BarStoreVersionError(
            f"bar store file {where} was written by format version {version}; this "
            f"backtrader_ibkr_cp reads versions up to {FORMAT_VERSION}: upgrade "
            "backtrader_ibkr_cp, or use another store folder",
            path=where,
            version=version,
            supported=FORMAT_VERSION,
        )


def parse_meta(schema: pa.Schema, where: str) -> PartMeta:
    """The :class:`PartMeta` of a file with ``schema``; typed errors naming ``where``."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        names = ", ".join(schema.names) or "none"
        raise _corrupt(where, f"is not a bar store file (no {META_KEY.decode()} metadata; "
                       f"columns: {names})")  # fmt: skip
    try:
        data = json.loads(raw)
    except ValueError:
        raise _corrupt(where, "has unreadable metadata") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise _corrupt(where, "has metadata of another format")
    check_version(data.get("version"), where)
    if not schema.equals(SCHEMA, check_metadata=False):
        found = ", ".join(f"{f.name}: {f.type}" for f in schema)
        raise _corrupt(where, f"has columns ({found}); expected ({_expected()})")
    try:
        coverage = tuple(Span.of_ms(int(a), int(b)) for a, b in data["coverage"])
        meta = PartMeta(
            conid=int(data["conid"]),
            bar=str(data["bar"]),
            outside_rth=bool(data["outside_rth"]),
            year=int(data["year"]),
            coverage=coverage,
            version=int(data["version"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(where, f"has incomplete metadata ({exc})") from None
    if list(coverage) != merge(coverage):
        raise _corrupt(where, "has overlapping or unsorted coverage spans")
    return meta


def _expected() -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in SCHEMA)


def check_table(table: pa.Table, meta: PartMeta, where: str) -> None:
    """Raise BarStoreCorrupt unless ``table``'s timestamps are strictly increasing, free of
    nulls, and every one lies inside ``meta.coverage``."""
    if table.num_rows == 0:
        return
    stamps = table.column("timestamp")
    if stamps.null_count or any(table.column(n).null_count for n in PRICE_COLUMNS):
        raise _corrupt(where, "has empty (null) values")
    ms = stamps.cast(pa.int64()).to_numpy()
    if ms.size > 1 and not bool(np.all(ms[1:] > ms[:-1])):
        raise _corrupt(where, "has bars out of order or repeated")
    starts = np.array([s.start_ms for s in meta.coverage], dtype=np.int64)
    ends = np.array([s.end_ms for s in meta.coverage], dtype=np.int64)
    index = np.searchsorted(starts, ms, side="right") - 1
    if starts.size == 0:
        raise _corrupt(where, "has bars but says it holds no span")
    inside = (index >= 0) & (ms < ends[np.maximum(index, 0)])
    if not bool(np.all(inside)):
        raise _corrupt(where, "has bars outside the spans it says it holds")


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def bars_table(bars: Sequence[Bar]) -> pa.Table:
    """``bars`` (sorted, unique timestamps) as a table of :data:`SCHEMA`."""
    columns: list[Any] = [
        pa.array([to_ms(b.timestamp) for b in bars], type=pa.int64()).cast(SCHEMA.field(0).type)
    ]
    for name in PRICE_COLUMNS:
        columns.append(pa.array([getattr(b, name) for b in bars], type=pa.float64()))
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def between(table: pa.Table, start_ms: int | None, end_ms: int | None) -> pa.Table:
    """The rows of ``table`` with ``start_ms <= timestamp < end_ms`` (None: unbounded)."""
    if start_ms is None and end_ms is None:
        return table
    ms = table.column("timestamp").cast(pa.int64())
    mask = None
    if start_ms is not None:
        mask = pc.greater_equal(ms, start_ms)
    if end_ms is not None:
        upper = pc.less(ms, end_ms)
        mask = upper if mask is None else pc.and_(mask, upper)
    return table.filter(mask)


def outside(table: pa.Table, start_ms: int, end_ms: int) -> pa.Table:
    """The rows of ``table`` with timestamp outside ``[start_ms, end_ms)``."""
    ms = table.column("timestamp").cast(pa.int64())
    return table.filter(pc.or_(pc.less(ms, start_ms), pc.greater_equal(ms, end_ms)))


def serialize(table: pa.Table, meta: PartMeta) -> bytes:
    """The Parquet bytes of ``table`` (sorted by timestamp) carrying ``meta``."""
    table = table.sort_by("timestamp").replace_schema_metadata({META_KEY: meta.to_bytes()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue())
