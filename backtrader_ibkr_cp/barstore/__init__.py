"""The Parquet bar store: completed bars fetched once, read by any number of backtests.

::

    store = BarStore("~/bars")                        # or BarStore.from_env(), "s3://bucket/bars"
    store.missing("AAPL", "5min", start, end, now=client.server_time())   # what to fetch
    store.write(contract, "5min", bars, span=(start, end), now=...)       # fetched: keep it
    store.read_columns("AAPL", "5min", start, end)    # numpy arrays for a feed, one pass
    store.contract("AAPL")                            # the Contract, with no gateway

:func:`fill` runs the missing/fetch/write loop with any fetch function. The layout on disk is
in :mod:`.layout`, the file format in :mod:`.schema`, the locking and atomic replacement in
:mod:`.files`.
"""

from __future__ import annotations

from ..errors import (
    BarStoreCorrupt,
    BarStoreError,
    BarStoreLookupError,
    BarStoreVersionError,
    BarStoreWriteError,
)
from .columns import BarColumns, bar_ends
from .fill import FillReport, fill, to_fetch
from .layout import SeriesKey
from .location import ENV_BAR_STORE, default_location
from .schema import FORMAT_VERSION
from .spans import Span
from .store import BarStore, ContractLike, SeriesInfo

__all__ = [
    "ENV_BAR_STORE",
    "FORMAT_VERSION",
    "BarColumns",
    "BarStore",
    "BarStoreCorrupt",
    "BarStoreError",
    "BarStoreLookupError",
    "BarStoreVersionError",
    "BarStoreWriteError",
    "ContractLike",
    "FillReport",
    "SeriesInfo",
    "SeriesKey",
    "Span",
    "bar_ends",
    "default_location",
    "fill",
    "to_fetch",
]
