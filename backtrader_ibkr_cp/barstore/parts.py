"""One partition file (one UTC year of one series): read it, check it, replace it.

Reading checks everything the format promises (:mod:`.schema`) and that the file sits where
its metadata says it belongs, so a file copied into the wrong folder is refused, not merged.
Replacing is always read-merge-write of the whole file under the series lock (local stores).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import BarStoreCorrupt, BarStoreError
from ..models.bar import Bar
from .files import StoreFiles
from .layout import SeriesKey, year_span
from .schema import (
    PartMeta,
    bars_table,
    check_table,
    empty_table,
    outside,
    parse_meta,
    serialize,
)
from .spans import Span, merge

__all__ = ["Part", "read_part", "replace_part"]


@dataclass(frozen=True)
class Part:
    """A partition file: its metadata, its row count, and its rows if they were read."""

    meta: PartMeta
    rows: int
    table: pa.Table | None


def read_part(files: StoreFiles, key: SeriesKey, year: int, *, with_table: bool) -> Part | None:
    """The year's file of ``key`` (metadata and row count from the footer; the rows too if
    ``with_table``), or None when there is none. Typed errors name the file."""
    rel = key.part(year)
    source = files.open_input(rel)
    if source is None:
        return None
    where = files.where(rel)
    with source:
        try:
            parquet = pq.ParquetFile(source)
            meta = parse_meta(parquet.schema_arrow, where)
            rows = parquet.metadata.num_rows
            table = parquet.read() if with_table else None
        except BarStoreError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BarStoreCorrupt(
                f"bar store file {where} cannot be read as Parquet ({exc}); move the file "
                "away (or delete it) and fill its span again with `ibkr-cp store fill`",
                path=where,
            ) from exc
    _check_place(meta, key, year, where)
    if table is not None:
        check_table(table, meta, where)
    return Part(meta, rows, table)


def replace_part(
    files: StoreFiles, key: SeriesKey, year: int, piece: Span, bars: list[Bar]
) -> None:
    """Put ``bars`` in place of every bar of ``piece`` (inside ``year``) and mark ``piece``
    held. Call with the series lock held."""
    part = read_part(files, key, year, with_table=True)
    held: tuple[Span, ...] = ()
    if part is None or part.table is None:
        table = empty_table()
    else:
        table = outside(part.table, piece.start_ms, piece.end_ms)
        held = part.meta.coverage
    table = pa.concat_tables([table.replace_schema_metadata(None), bars_table(bars)])
    coverage = tuple(merge([*held, piece]))
    meta = PartMeta(key.conid, key.timeframe.bar, key.outside_rth, year, coverage)
    files.write(key.part(year), serialize(table, meta))


def _check_place(meta: PartMeta, key: SeriesKey, year: int, where: str) -> None:
    says = (meta.conid, meta.bar, meta.outside_rth, meta.year)
    if says != (key.conid, key.timeframe.bar, key.outside_rth, year):
        hours = "outside RTH" if meta.outside_rth else "RTH"
        raise BarStoreCorrupt(
            f"bar store file {where} says it holds conid {meta.conid} {meta.bar} {hours} "
            f"{meta.year}, not {key.describe()} {year} as its folder does; move it back or away",
            path=where,
        )
    bounds = year_span(year)
    if any(s.start < bounds.start or s.end > bounds.end for s in meta.coverage):
        raise BarStoreCorrupt(
            f"bar store file {where} holds spans outside {year}; move the file away and fill "
            "its span again",
            path=where,
        )
