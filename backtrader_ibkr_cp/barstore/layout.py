"""Names on disk. Pure.

::

    <root>/_barstore.json                                     {"format": ..., "version": 1}
    <root>/conid=265598/_contract.json                        the Contract, as JSON
    <root>/conid=265598/bar=5min/hours=rth/.lock              writers' lock (local stores)
    <root>/conid=265598/bar=5min/hours=rth/year=2024/bars.parquet

One folder per series (conid, IBKR bar size, ``hours=rth`` regular hours or ``hours=all``
04:00-20:00 New York), one Parquet file per UTC year of bar starts. The folders are Hive
partitions, so ``pyarrow.dataset.dataset(root, partitioning="hive")`` reads the whole store
with ``conid``, ``bar``, ``hours`` and ``year`` columns; files starting with ``_`` or ``.``
are not data (pyarrow skips them too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from ..models.timeframe import Timeframe
from .spans import Span

__all__ = [
    "CONTRACT_FILE",
    "PART_FILE",
    "ROOT_FILE",
    "SeriesKey",
    "parse_conid_dir",
    "parse_year_dir",
    "year_span",
    "years",
]

ROOT_FILE = "_barstore.json"
CONTRACT_FILE = "_contract.json"
PART_FILE = "bars.parquet"

_CONID_DIR = re.compile(r"conid=([1-9][0-9]{0,11})")
_BAR_DIR = re.compile(r"bar=([0-9a-z]+)")
_HOURS = {"rth": False, "all": True}
_YEAR_DIR = re.compile(r"year=([0-9]{4})")


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One series: a contract, a bar size, regular hours or not."""

    conid: int
    timeframe: Timeframe
    outside_rth: bool = False

    @property
    def folder(self) -> str:
        return f"conid={self.conid}/bar={self.timeframe.bar}/hours={_hours(self.outside_rth)}"

    def part(self, year: int) -> str:
        return f"{self.folder}/year={year}/{PART_FILE}"

    def describe(self) -> str:
        hours = "outside RTH" if self.outside_rth else "RTH"
        return f"conid {self.conid} {self.timeframe.bar} {hours}"


def _hours(outside_rth: bool) -> str:
    return "all" if outside_rth else "rth"


def conid_dir(conid: int) -> str:
    return f"conid={conid}"


def parse_conid_dir(name: str) -> int | None:
    found = _CONID_DIR.fullmatch(name)
    return int(found.group(1)) if found else None


def parse_bar_dir(name: str) -> Timeframe | None:
    found = _BAR_DIR.fullmatch(name)
    if not found:
        return None
    return next((tf for tf in Timeframe if tf.bar == found.group(1)), None)


def parse_hours_dir(name: str) -> bool | None:
    if not name.startswith("hours="):
        return None
    return _HOURS.get(name[len("hours=") :])


def parse_year_dir(name: str) -> int | None:
    found = _YEAR_DIR.fullmatch(name)
    return int(found.group(1)) if found else None


def year_span(year: int) -> Span:
    """``[Jan 1 year, Jan 1 year+1)`` UTC."""
    return Span(
        datetime(year, 1, 1, tzinfo=timezone.utc), datetime(year + 1, 1, 1, tzinfo=timezone.utc)
    )


def years(span: Span) -> range:
    """The UTC years ``span`` touches."""
    last = (
        span.end.year
        if span.end > datetime(span.end.year, 1, 1, tzinfo=timezone.utc)
        else span.end.year - 1
    )
    return range(span.start.year, last + 1)
