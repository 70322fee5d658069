"""Writing bars to a file or stdout: CSV (exact floats) or Parquet, checked before any
download. Shared by ``ibkr-cp bars`` and ``ibkr-cp store export``."""

from __future__ import annotations

import csv
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from ..models import Bar

__all__ = ["CSV_COLUMNS", "OUTPUT_SUFFIXES", "check_output", "write_bars"]

CSV_COLUMNS = ("datetime", "open", "high", "low", "close", "volume")
#: The file types ``--output`` writes.
OUTPUT_SUFFIXES = (".csv", ".parquet")


def check_output(path: str | None) -> None:
    """Refuse an ``--output`` that would not be what the user asked for, before any download:
    an extension other than :data:`OUTPUT_SUFFIXES`, a folder that does not exist, or
    Parquet without pandas and pyarrow."""
    if path is None:
        return
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        said = f"'{file.suffix}' files" if file.suffix else "files without an extension"
        raise ConfigError(
            f"--output {path}: cannot write {said}; use a file ending in "
            f"{' or '.join(OUTPUT_SUFFIXES)} (or no --output for CSV on stdout)"
        )
    folder = file.parent
    if not folder.is_dir():
        raise ConfigError(
            f"--output {path}: the folder {folder} does not exist; create it first "
            f"(mkdir -p {folder}) or write elsewhere"
        )
    if suffix != ".parquet":
        return
    try:
        importlib.import_module("pandas")
        importlib.import_module("pyarrow")
    except ImportError:
        raise ConfigError(
            f"writing {path} needs pandas and pyarrow: `pip install pandas pyarrow`, or "
            "write a .csv file instead"
        ) from None


def _iso(bar: Bar) -> str:
    return bar.timestamp.isoformat()


def write_bars(bars: Sequence[Bar], path: str | None, stream: IO[str] | None = None) -> None:
    """Bars as CSV (``CSV_COLUMNS``) to ``path`` or ``stream`` (default stdout), or Parquet
    when ``path`` ends in ``.parquet``. Floats are written with ``repr`` (exact)."""
    if path is not None and path.lower().endswith(".parquet"):
        _write_parquet(bars, Path(path))
        return
    if path is None:
        _write_csv(bars, stream if stream is not None else sys.stdout)
        return
    with open(path, "w", newline="", encoding="utf-8") as handle:
        _write_csv(bars, handle)


def _write_csv(bars: Sequence[Bar], handle: IO[str]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for bar in bars:
        writer.writerow(
            (_iso(bar), repr(bar.open), repr(bar.high), repr(bar.low), repr(bar.close),
             repr(bar.volume))
        )  # fmt: skip


def _write_parquet(bars: Sequence[Bar], path: Path) -> None:
    pd: Any = importlib.import_module("pandas")
    frame = pd.DataFrame(
        {
            "datetime": [b.timestamp for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        }
    )
    frame.to_parquet(path, index=False)
