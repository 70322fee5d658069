"""BarStore on one process: round trip, coverage, missing spans, corrections, contracts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from backtrader_ibkr_cp import (
    BarStore,
    BarStoreLookupError,
    ConfigError,
    DataIntegrityError,
    MarketError,
)
from backtrader_ibkr_cp.barstore import Span
from backtrader_ibkr_cp.contracts.resolver import AmbiguousContract
from backtrader_ibkr_cp.models import Bar, Timeframe
from tests.barstore.barstore_helpers import AAPL, AAPL_MEXI, IBM, LATER, make_bars, stamps, utc


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "bars", clock=lambda: LATER)


WEEK = (utc(2024, 3, 4), utc(2024, 3, 9))  # Monday .. Saturday


def test_round_trip_of_bars_columns_and_table(store: BarStore) -> None:
    bars = make_bars("5min", *WEEK)
    assert len(bars) == 5 * 78
    assert store.write(AAPL, "5min", bars, span=WEEK) == Span(*WEEK)
    assert store.read(AAPL, "5min", *WEEK) == bars
    assert store.read("AAPL", Timeframe.MINUTE_5) == bars  # whole series, symbol from the store
    assert store.read(265598, "5min", utc(2024, 3, 5), utc(2024, 3, 6)) == bars[78:156]

    columns = store.read_columns(AAPL, "5min", *WEEK)
    assert len(columns) == len(bars)
    assert columns.timestamp.dtype == np.int64 and columns.close.dtype == np.float64
    assert columns.timestamp[0] == int(bars[0].timestamp.timestamp() * 1000)
    assert np.array_equal(columns.volume, [b.volume for b in bars])
    assert columns.to_bars() == bars
    # backtrader's date numbers: bt.date2num(2024-03-04 14:30 UTC) = 738949.6041666666
    assert columns.bt_datetime()[0] == pytest.approx(738949 + 14.5 / 24, abs=1e-9)
    assert np.all(columns.end() - columns.timestamp == 5 * 60_000)

    table = store.read_table(AAPL, "5min", *WEEK)
    assert table.schema.names == ["timestamp", "open", "high", "low", "close", "volume"]
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.num_rows == len(bars)


def test_a_second_missing_after_a_fill_is_empty(store: BarStore) -> None:
    missing = store.missing(AAPL, "5min", *WEEK)
    assert missing == [Span(*WEEK)]
    for gap in missing:
        store.write(AAPL, "5min", make_bars("5min", gap.start, gap.end), span=gap)
    assert store.missing(AAPL, "5min", *WEEK) == []
    assert store.missing("AAPL", "5min", *WEEK) == []
    assert store.coverage(AAPL, "5min") == [Span(*WEEK)]


def test_extending_a_span_asks_only_for_the_new_sessions(store: BarStore) -> None:
    store.write(AAPL, "5min", make_bars("5min", *WEEK), span=WEEK)
    # The next week, asked from the same Monday: only what follows Saturday is missing.
    assert store.missing(AAPL, "5min", utc(2024, 3, 4), utc(2024, 3, 13)) == [
        Span(utc(2024, 3, 9), utc(2024, 3, 13))
    ]
    # A span ending on Sunday holds no session after Saturday 00:00: nothing to fetch.
    assert store.missing(AAPL, "5min", utc(2024, 3, 4), utc(2024, 3, 11)) == []
    # Extending into Monday morning before the open: still nothing (no bar can start there).
    assert store.missing(AAPL, "5min", utc(2024, 3, 4), utc(2024, 3, 11, 13)) == []


def test_a_hole_in_the_middle_is_reported_and_filled(store: BarStore) -> None:
    monday, tuesday = utc(2024, 3, 4), utc(2024, 3, 5)
    friday, saturday = utc(2024, 3, 8), utc(2024, 3, 9)
    store.write(AAPL, "5min", make_bars("5min", monday, tuesday), span=(monday, tuesday))
    store.write(AAPL, "5min", make_bars("5min", friday, saturday), span=(friday, saturday))
    assert store.missing(AAPL, "5min", *WEEK) == [Span(tuesday, friday)]
    store.write(AAPL, "5min", make_bars("5min", tuesday, friday), span=(tuesday, friday))
    assert store.missing(AAPL, "5min", *WEEK) == []
    assert store.coverage(AAPL, "5min") == [Span(*WEEK)]
    assert store.read(AAPL, "5min") == make_bars("5min", *WEEK)


def test_an_empty_span_is_remembered_as_fetched(store: BarStore) -> None:
    holiday = (utc(2024, 7, 4), utc(2024, 7, 5))  # a Thursday the calendar counts as trading
    assert store.missing(AAPL, "5min", *holiday) == [Span(*holiday)]
    assert store.write(AAPL, "5min", [], span=holiday) == Span(*holiday)
    assert store.missing(AAPL, "5min", *holiday) == []
    assert store.read(AAPL, "5min") == []
    assert store.coverage(AAPL, "5min") == [Span(*holiday)]


def test_a_write_over_a_span_replaces_its_bars(store: BarStore) -> None:
    store.write(AAPL, "5min", make_bars("5min", *WEEK), span=WEEK)
    wednesday = (utc(2024, 3, 6), utc(2024, 3, 7))
    corrected = make_bars("5min", *wednesday, version=1)
    corrected = corrected[:40] + corrected[41:]  # IBKR dropped a bar, too
    store.write(AAPL, "5min", corrected, span=wednesday)
    expected = (
        make_bars("5min", WEEK[0], wednesday[0])
        + corrected
        + make_bars("5min", wednesday[1], WEEK[1])
    )
    assert store.read(AAPL, "5min") == expected
    assert store.coverage(AAPL, "5min") == [Span(*WEEK)]


def test_the_open_end_waits_for_bars_to_complete_and_settle(tmp_path: Path) -> None:
    store = BarStore(tmp_path, settle=60)
    day = (utc(2024, 3, 6), utc(2024, 3, 7))
    during = utc(2024, 3, 6, 19, 2, 30)  # 15:02:30 New York: the 15:00 bar is forming
    assert store.horizon("5min", now=during) == utc(2024, 3, 6, 19, 0)
    assert store.missing(AAPL, "5min", *day, now=during) == [Span(day[0], utc(2024, 3, 6, 19))]
    # A write of the whole day at that moment keeps only the completed bars.
    recorded = store.write(AAPL, "5min", make_bars("5min", *day), span=day, now=during)
    assert recorded == Span(day[0], utc(2024, 3, 6, 19))
    assert store.read(AAPL, "5min")[-1].timestamp == utc(2024, 3, 6, 18, 55)
    # 15:05:30: the 15:00 bar is complete but not settled; 15:06:01: it is.
    assert store.missing(AAPL, "5min", *day, now=utc(2024, 3, 6, 19, 5, 30)) == []
    assert store.missing(AAPL, "5min", *day, now=utc(2024, 3, 6, 19, 6, 1)) == [
        Span(utc(2024, 3, 6, 19), utc(2024, 3, 6, 19, 5))  # the 15:05 bar is forming
    ]
    # A weekly bar is not complete until Friday's close, even on Tuesday night.
    assert store.horizon("1w", now=utc(2024, 3, 6, 3)) == utc(2024, 3, 4, 14, 30)
    assert store.horizon("1w", now=utc(2024, 3, 9, 3)) == utc(2024, 3, 9, 2, 59)


def test_nothing_before_the_horizon_means_nothing_missing_or_written(tmp_path: Path) -> None:
    store = BarStore(tmp_path, settle=0)
    now = utc(2024, 3, 6, 14, 31)  # one minute after the open
    assert store.missing(AAPL, "5min", utc(2024, 3, 6, 14, 30), utc(2024, 3, 7), now=now) == []
    span = (utc(2024, 3, 6, 14, 30), utc(2024, 3, 7))
    assert store.write(AAPL, "5min", [], span=span, now=now) is None
    assert store.coverage(AAPL, "5min") == []
    assert store.contract("AAPL") == AAPL  # the contract is kept all the same


def test_series_are_separate_by_bar_size_and_hours(store: BarStore) -> None:
    store.write(AAPL, "5min", make_bars("5min", *WEEK), span=WEEK)
    extended = make_bars("5min", *WEEK, outside_rth=True)
    store.write(AAPL, "5min", extended, span=WEEK, outside_rth=True)
    store.write(AAPL, "1h", make_bars("1h", *WEEK), span=WEEK)
    assert store.read(AAPL, "5min", outside_rth=True) == extended
    assert len(store.read(AAPL, "1h")) == 5 * 7
    assert len(store.read(AAPL, "5min")) == 5 * 78
    assert store.missing(IBM, "5min", *WEEK) == [Span(*WEEK)]
    listed = {(s.key.timeframe.bar, s.key.outside_rth): s.bars for s in store.series()}
    # Friday's 19:00-20:00 New York hour (01:00 UTC Saturday) lies after WEEK's end.
    assert len(extended) == 5 * 192 - 12
    assert listed == {("5min", False): 390, ("5min", True): len(extended), ("1h", False): 35}


def test_a_span_across_new_year_is_split_into_year_files(store: BarStore, tmp_path: Path) -> None:
    span = (utc(2023, 12, 27), utc(2024, 1, 4))
    bars = make_bars("1h", *span)
    store.write(AAPL, "1h", bars, span=span)
    assert store.read(AAPL, "1h", *span) == bars
    assert store.coverage(AAPL, "1h") == [Span(*span)]
    folder = tmp_path / "bars" / "conid=265598" / "bar=1h" / "hours=rth"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "year=2023",
        "year=2024",
    ]
    # The whole store reads as one Hive-partitioned dataset too.
    table = ds.dataset(tmp_path / "bars", partitioning="hive").to_table()
    assert table.num_rows == len(bars)


def test_daily_weekly_monthly_bars_and_their_ends(store: BarStore) -> None:
    span = (utc(2024, 1, 1), utc(2024, 7, 1))
    for tf in ("1d", "1w", "1m"):
        bars = make_bars(tf, *span)
        store.write(AAPL, tf, bars, span=span)
        columns = store.read_columns(AAPL, tf)
        assert columns.to_bars() == bars
        ends = columns.end()
        assert ends[0] > columns.timestamp[0]
    weekly = store.read_columns(AAPL, "1w")
    assert weekly.end()[0] == int(utc(2024, 1, 5, 21).timestamp() * 1000)  # Friday's close


@pytest.mark.parametrize(
    ("bar", "outside_rth"),
    [("1min", False), ("5min", True), ("1h", False), ("1h", True), ("4h", True), ("8h", False)],
)
def test_bar_ends_agree_with_the_calendar(bar: str, outside_rth: bool) -> None:
    from backtrader_ibkr_cp.barstore import bar_ends
    from backtrader_ibkr_cp.models.calendar import bucket_at

    tf = Timeframe.parse(bar)
    # Across the March DST change (2024-03-10) and a weekend.
    found = stamps(tf, utc(2024, 3, 7), utc(2024, 3, 13), outside_rth)
    ms = np.array([int(s.timestamp() * 1000) for s in found], dtype=np.int64)
    expected = []
    for stamp in found:
        bucket = bucket_at(stamp, tf, outside_rth=outside_rth)
        assert bucket is not None
        expected.append(int(bucket.end.timestamp() * 1000))
    assert bar_ends(ms, tf, outside_rth=outside_rth).tolist() == expected


def test_the_stored_contract_answers_symbol_lookups(store: BarStore) -> None:
    with pytest.raises(BarStoreLookupError, match=r"holds no contract for 'AAPL-STK-SMART'"):
        store.contract("AAPL")
    store.write(AAPL, "1d", [], span=WEEK)
    store.write(AAPL_MEXI, "1d", [], span=WEEK)
    store.write(IBM, "1d", [], span=WEEK)
    assert store.contract("AAPL") == AAPL  # USD listing preferred, as the gateway resolver does
    assert store.contract("aapl-stk-mexi") == AAPL_MEXI
    assert store.contract(38708077) == AAPL_MEXI
    assert store.contract("8314") == IBM
    assert sorted(c.conid for c in store.contracts()) == [8314, 265598, 38708077]
    with pytest.raises(BarStoreLookupError) as info:
        store.contract("MSFT")
    assert isinstance(info.value, LookupError) and isinstance(info.value, MarketError)
    assert "it holds: AAPL, IBM" in str(info.value) and "ibkr-cp store fill" in str(info.value)
    before = (Path(store.location) / "conid=265598" / "_contract.json").stat().st_mtime_ns
    store.put_contract(AAPL)  # the same contract again: the file is left alone
    assert (Path(store.location) / "conid=265598" / "_contract.json").stat().st_mtime_ns == before


def test_an_ambiguous_symbol_lists_the_stored_candidates(store: BarStore) -> None:
    from backtrader_ibkr_cp.models import Contract

    other = Contract(900000102, "DUAL", "STK", "NASDAQ", "USD")
    store.write(Contract(900000101, "DUAL", "STK", "NYSE", "USD"), "1d", [], span=WEEK)
    store.write(other, "1d", [], span=WEEK)
    with pytest.raises(AmbiguousContract, match="DUAL-STK-NYSE-USD") as info:
        store.contract("DUAL")
    assert len(info.value.candidates) == 2
    assert store.contract("DUAL-STK-NASDAQ") == other


def test_bad_writes_are_refused_before_anything_changes(store: BarStore) -> None:
    bars = make_bars("5min", *WEEK)
    store.write(AAPL, "5min", bars, span=WEEK)
    with pytest.raises(ConfigError, match="starts outside the span"):
        store.write(AAPL, "5min", bars, span=(utc(2024, 3, 5), utc(2024, 3, 6)))
    broken = Bar(bars[0].timestamp, 10.0, 9.0, 11.0, 10.0, 5.0)  # high below low
    with pytest.raises(DataIntegrityError, match=r"high 9\.0 is below low 11\.0"):
        store.write(AAPL, "5min", [broken], span=WEEK)
    twin = Bar(bars[0].timestamp, 1.0, 1.0, 1.0, 1.0, 1.0)
    with pytest.raises(DataIntegrityError, match="conflicts"):
        store.write(AAPL, "5min", [bars[0], twin], span=WEEK)
    with pytest.raises(ConfigError, match="naive"):
        store.write(AAPL, "5min", [], span=(WEEK[0].replace(tzinfo=None), WEEK[1]))
    with pytest.raises(ConfigError, match="not after its start"):
        store.missing(AAPL, "5min", WEEK[1], WEEK[0])
    with pytest.raises(ConfigError, match="bar size '7min' is not supported"):
        store.read(AAPL, "7min")
    with pytest.raises(BarStoreLookupError):
        store.write("MSFT", "5min", [], span=WEEK)  # a spec needs a stored contract
    assert store.read(AAPL, "5min") == bars


def test_out_of_order_and_repeated_bars_are_stored_once_in_order(store: BarStore) -> None:
    bars = make_bars("5min", *WEEK)
    store.write(AAPL, "5min", list(reversed(bars)) + bars[:10], span=WEEK)
    assert store.read(AAPL, "5min") == bars


def test_an_empty_or_missing_store_reads_as_empty(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "nothing-here", clock=lambda: LATER)
    assert store.read(AAPL, "5min") == []
    assert len(store.read_columns(AAPL, "5min")) == 0
    assert store.coverage(AAPL, "5min") == []
    assert store.series() == [] and store.contracts() == []
    assert not (tmp_path / "nothing-here").exists()  # reading creates nothing


def test_a_file_uri_and_a_local_subtree_file_system_work_alike(tmp_path: Path) -> None:
    bars = make_bars("5min", *WEEK)
    by_uri = BarStore((tmp_path / "a").as_uri(), clock=lambda: LATER)
    assert by_uri.location == str(tmp_path / "a")
    by_uri.write(AAPL, "5min", bars, span=WEEK)
    assert BarStore(tmp_path / "a").read(AAPL, "5min") == bars

    (tmp_path / "b").mkdir()
    subtree = pafs.SubTreeFileSystem(str(tmp_path / "b"), pafs.LocalFileSystem())
    by_fs = BarStore(subtree, clock=lambda: LATER)
    by_fs.write(AAPL, "5min", bars, span=WEEK)
    assert by_fs.read("AAPL", "5min") == bars
    assert BarStore("nested", filesystem=subtree).missing(AAPL, "5min", *WEEK, now=LATER) == [
        Span(*WEEK)
    ]
    assert (tmp_path / "b" / "conid=265598" / "bar=5min" / "hours=rth" / ".lock").exists()


def test_a_non_local_pyarrow_file_system_is_written_without_locks(tmp_path: Path) -> None:
    """``ArrowFiles``: any pyarrow file system that is not the local one (here: the local one
    hidden behind a Python handler, as an object store would be). One object per write."""
    from backtrader_ibkr_cp.barstore.files import ArrowFiles

    inner = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    wrapped = pafs.PyFileSystem(_Passthrough(inner))
    store = BarStore("store", filesystem=wrapped, clock=lambda: LATER)
    assert isinstance(store._files, ArrowFiles)
    bars = make_bars("5min", *WEEK)
    store.write(AAPL, "5min", bars, span=WEEK)
    assert store.read("AAPL", "5min") == bars
    assert store.missing(AAPL, "5min", *WEEK) == []
    assert not list(tmp_path.rglob(".lock"))
    assert BarStore(tmp_path / "store").read(AAPL, "5min") == bars


class _Passthrough(pafs.FileSystemHandler):  # type: ignore[misc]
    """A pyarrow FileSystemHandler forwarding to another file system."""

    def __init__(self, fs: pafs.FileSystem) -> None:
        self.fs = fs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Passthrough) and other.fs == self.fs

    def __ne__(self, other: object) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "passthrough"

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        self.fs.delete_dir_contents("", accept_root_dir=True)

    def delete_file(self, path: str) -> None:
        self.fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self.fs.open_input_stream(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self.fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata: dict[str, str]) -> pa.NativeFile:
        return self.fs.open_output_stream(path)

    def open_append_stream(self, path: str, metadata: dict[str, str]) -> pa.NativeFile:
        return self.fs.open_append_stream(path)


def test_default_location_and_from_env(tmp_path: Path) -> None:
    from backtrader_ibkr_cp.barstore import default_location

    assert default_location({"IBKR_CP_BAR_STORE": str(tmp_path)}) == str(tmp_path)
    assert default_location({"HOME": "/home/u"}, "linux") == (
        "/home/u/.local/share/backtrader_ibkr_cp/bars"
    )
    assert default_location({"HOME": "/home/u", "XDG_DATA_HOME": "/data"}, "linux") == (
        "/data/backtrader_ibkr_cp/bars"
    )
    assert default_location({"HOME": "/Users/u"}, "darwin") == (
        "/Users/u/Library/Application Support/backtrader_ibkr_cp/bars"
    )
    store = BarStore.from_env({"IBKR_CP_BAR_STORE": str(tmp_path / "env")})
    assert store.location == str(tmp_path / "env")


def test_a_span_is_validated_and_ordered() -> None:
    with pytest.raises(ConfigError):
        Span(WEEK[0], WEEK[0])
    a, b = Span(utc(2024, 1, 1), utc(2024, 1, 2)), Span(utc(2024, 1, 2), utc(2024, 1, 3))
    from backtrader_ibkr_cp.barstore.spans import merge, subtract

    assert merge([b, a]) == [Span(a.start, b.end)]
    whole = Span(utc(2024, 1, 1), utc(2024, 1, 10))
    assert subtract(whole, [Span(utc(2024, 1, 3), utc(2024, 1, 4))]) == [
        Span(utc(2024, 1, 1), utc(2024, 1, 3)),
        Span(utc(2024, 1, 4), utc(2024, 1, 10)),
    ]
    assert subtract(whole, [whole]) == []
    assert a.start + timedelta(days=1) == a.end
