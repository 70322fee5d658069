"""``IBKRCPStore(bar_store=...)``: feeds read their span through the bar store, against the
gateway simulator over loopback.

The simulator's clock is frozen on a Saturday (every bar of the weeks before is complete)
unless a test says otherwise. Request counts are the simulator's (``sim.stats``): what reached
the server, not what the client meant to send.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import queue
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backtrader as bt
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtrader_ibkr_cp import (
    Bar,
    BarStore,
    BarStoreCorrupt,
    BarStoreVersionError,
    ConfigError,
    DataUnavailable,
    IBKRCPStore,
)
from backtrader_ibkr_cp.bt import feed as feed_module
from backtrader_ibkr_cp.history.planner import minimum_requests
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.barstore.feed_runs import (
    CHILD_SECONDS,
    HISTORY,
    backtest,
    backtest_as,
    feed,
    fill_span,
    lines_of,
    ny,
)
from tests.support.instants import LIVE_SPEED, TUESDAY_MIDDAY, TUESDAY_MORNING, WEEKEND
from tests.support.recorder import Recorder, run
from tests.support.truth import truth_rows

SPAWN = multiprocessing.get_context("spawn")
FIVE = Timeframe.MINUTE_5
#: Three weeks of sessions (naive New York, as fromdate/todate are read).
WEEK_1 = (dt.datetime(2024, 2, 26), dt.datetime(2024, 3, 1, 16))
WEEK_2 = (dt.datetime(2024, 3, 4), dt.datetime(2024, 3, 8, 16))
WEEK_3 = (dt.datetime(2024, 3, 11), dt.datetime(2024, 3, 15, 16))
AAPL_PART = "conid=265598/bar=5min/hours=rth/year=2024/bars.parquet"
NOBODY = 65534


@pytest.fixture(autouse=True)
def fresh_stores() -> Iterator[None]:
    IBKRCPStore._reset()
    yield
    IBKRCPStore._reset()


@pytest.fixture
def sim() -> Iterator[GatewaySimulator]:
    with GatewaySimulator(seed=11, speed=0, start=WEEKEND) as simulator:
        yield simulator


def truth(sim: GatewaySimulator, start: dt.datetime, end: dt.datetime) -> list[Any]:
    """The simulator's bars starting in [start, end) (naive New York), as recorded rows."""
    bars = sim.truth("AAPL", "5min", ny(*start.timetuple()[:5]), ny(*end.timetuple()[:5]))
    return truth_rows(bars, "5min")


def expected_requests(folder: Path, sim: GatewaySimulator, start: Any, end: Any) -> int:
    """History requests a read-through of [start, end] needs: the planner's minimum for each
    span the store lacks at the simulator's clock."""
    store = BarStore(folder)
    aapl = store.contract("AAPL")
    span_end = ny(*end.timetuple()[:5]) - FIVE.duration + dt.timedelta(microseconds=1)
    gaps = store.missing(aapl, FIVE, ny(*start.timetuple()[:5]), span_end, now=sim.now())
    return sum(minimum_requests(FIVE, gap.start, gap.end) for gap in gaps)


# -- reading through the store ---------------------------------------------------------------


def test_a_second_identical_run_asks_nothing_and_sees_the_same_bars(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    first = backtest(sim.url, tmp_path, *WEEK_2)
    assert first.rows["AAPL"] == truth(sim, WEEK_2[0], dt.datetime(2024, 3, 9))
    assert sim.stats.requests[HISTORY] == minimum_requests(
        FIVE, ny(2024, 3, 4), ny(2024, 3, 8, 15, 55)
    )
    sim.stats.reset()
    second = backtest(sim.url, tmp_path, *WEEK_2)
    assert sim.stats.requests == {}  # not even a log-in or a symbol look-up
    assert second.rows == first.rows
    assert second.statuses == first.statuses == [
        ("AAPL", "CONNECTED"), ("AAPL", "DELAYED"), ("AAPL", "DISCONNECTED")
    ]  # fmt: skip


def test_a_covered_run_works_with_the_gateway_stopped(no_thread_leak: None, tmp_path: Path) -> None:
    with GatewaySimulator(seed=11, speed=0, start=WEEKEND) as sim:
        filled = backtest(sim.url, tmp_path, *WEEK_2)
        url = sim.url
    offline = backtest(url, tmp_path, *WEEK_2)  # the gateway is gone
    assert offline.rows == filled.rows and len(offline.rows["AAPL"]) == 5 * 78


def test_extending_the_span_fetches_only_the_new_sessions(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    backtest(sim.url, tmp_path, *WEEK_2)
    expected = expected_requests(tmp_path, sim, WEEK_1[0], WEEK_3[1])
    assert expected == minimum_requests(FIVE, ny(2024, 2, 26), ny(2024, 3, 2)) + minimum_requests(
        FIVE, ny(2024, 3, 11), ny(2024, 3, 16)
    )
    sim.stats.reset()
    wide = backtest(sim.url, tmp_path, WEEK_1[0], WEEK_3[1])
    assert sim.stats.requests[HISTORY] == expected
    assert wide.rows["AAPL"] == truth(sim, WEEK_1[0], dt.datetime(2024, 3, 16))
    assert len(BarStore(tmp_path).coverage("AAPL", "5min")) == 1


def test_a_hole_in_the_middle_is_filled(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    backtest(sim.url, tmp_path, *WEEK_1)
    backtest(sim.url, tmp_path, *WEEK_3)
    assert len(BarStore(tmp_path).coverage("AAPL", "5min")) == 2
    expected = expected_requests(tmp_path, sim, WEEK_1[0], WEEK_3[1])
    assert expected == minimum_requests(FIVE, ny(2024, 3, 4), ny(2024, 3, 9))
    sim.stats.reset()
    whole = backtest(sim.url, tmp_path, WEEK_1[0], WEEK_3[1])
    assert sim.stats.requests[HISTORY] == expected
    assert whole.rows["AAPL"] == truth(sim, WEEK_1[0], dt.datetime(2024, 3, 16))
    assert len(BarStore(tmp_path).coverage("AAPL", "5min")) == 1


def test_the_open_end_is_delivered_but_only_settled_bars_are_stored(
    no_thread_leak: None, tmp_path: Path
) -> None:
    with GatewaySimulator(seed=11, speed=0, start=TUESDAY_MIDDAY) as sim:  # 13:00 New York
        first = backtest(sim.url, tmp_path, dt.datetime(2024, 3, 4), None)
        assert first.rows["AAPL"] == truth_rows(sim.truth("AAPL", "5min", ny(2024, 3, 4)), "5min")
        assert first.rows["AAPL"][-1][0] == ny(2024, 3, 5, 13, 0)  # the 12:55 bar, complete
        (held,) = BarStore(tmp_path).coverage("AAPL", "5min")
        assert held.end <= ny(2024, 3, 5, 12, 55)  # not settled yet: not stored
        sim.stats.reset()
        second = backtest(sim.url, tmp_path, dt.datetime(2024, 3, 4), None)
        assert sim.stats.requests[HISTORY] == 1  # only the open end
        assert second.rows == first.rows


def test_a_bar_store_object_and_bad_values(sim: GatewaySimulator, tmp_path: Path) -> None:
    store = BarStore(tmp_path / "bars")
    strategy = backtest(sim.url, store, *WEEK_2)
    assert len(strategy.rows["AAPL"]) == 5 * 78 and store.coverage("AAPL", "5min")
    with pytest.raises(ConfigError, match="bar_store=42"):
        IBKRCPStore(bar_store=42)
    with pytest.raises(ConfigError, match="bar_store=''"):
        IBKRCPStore(bar_store="")


def test_an_empty_span_held_by_the_store_raises_instead_of_ending_quietly(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    backtest(sim.url, tmp_path, *WEEK_2)
    store = BarStore(tmp_path, clock=lambda: WEEKEND)
    store.write("AAPL", FIVE, [], span=(ny(2024, 3, 6), ny(2024, 3, 7)))  # "no bars" held
    with pytest.raises(DataUnavailable, match="holds no bars"):
        backtest(sim.url, tmp_path, dt.datetime(2024, 3, 6), dt.datetime(2024, 3, 6, 16))


def test_a_live_feeds_backfill_reads_through_the_store(
    no_thread_leak: None, tmp_path: Path
) -> None:
    monday = (dt.datetime(2024, 3, 4), dt.datetime(2024, 3, 4, 16))
    with GatewaySimulator(seed=5, speed=LIVE_SPEED, start=TUESDAY_MORNING) as sim:
        backtest(sim.url, tmp_path, *monday, feed_kw={"compression": 1})
        store = BarStore(tmp_path, clock=sim.now)
        held = store.read("AAPL", "1min")
        marked = [
            Bar(b.timestamp, b.open + 1000, b.high + 1000, b.low + 1000, b.close + 1000, b.volume)
            for b in held
        ]
        store.write("AAPL", "1min", marked, span=store.coverage("AAPL", "1min")[0])

        IBKRCPStore._reset()
        live = IBKRCPStore(gateway_url=sim.url, poll_interval=0.2, bar_store=tmp_path)
        cerebro = bt.Cerebro(stdstats=False)
        data = feed(live, dt.datetime(2024, 3, 4, 9, 30), None, compression=1, historical=False)
        data.p.qcheck = 0.1
        cerebro.adddata(data, name="AAPL")
        cerebro.addstrategy(Recorder, live_bars=3)
        strategy = run(cerebro)
        rows = strategy.rows["AAPL"]
        tuesday = [row for row in rows if row[0] > ny(2024, 3, 5)]
        assert rows[: len(marked)] == truth_rows(marked, "1min")  # Monday: from the store
        assert len(rows) == len(marked) + len(tuesday)
        first, last = tuesday[0][0], tuesday[-1][0]
        start = first - dt.timedelta(minutes=1)
        assert tuesday == truth_rows(sim.truth("AAPL", "1min", start=start, end=last), "1min")
        assert first == ny(2024, 3, 5, 9, 31) and len(strategy.live_rows["AAPL"]) >= 3
        (covered,) = BarStore(tmp_path).coverage("AAPL", "1min")  # Tuesday's backfill was kept
        assert covered.start <= ny(2024, 3, 4) and covered.end >= ny(2024, 3, 5, 9, 59)


# -- the one-pass preload --------------------------------------------------------------------


@pytest.fixture
def preloads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the feeds preloaded in one pass (a spy on the feed module's ``append_bars``)."""
    calls: list[int] = []
    real = feed_module.append_bars

    def spy(data: Any, bars: Any, **kwargs: Any) -> Any:
        calls.append(len(bars))
        return real(data, bars, **kwargs)

    monkeypatch.setattr(feed_module, "append_bars", spy)
    return calls


def test_the_one_pass_preload_fills_the_lines_exactly_as_bar_by_bar(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path, preloads: list[int]
) -> None:
    fetched = backtest(sim.url, tmp_path, *WEEK_2)  # through the gateway, at once
    stored = backtest(sim.url, tmp_path, *WEEK_2)  # from the store alone, at once
    assert preloads == [5 * 78, 5 * 78]
    by_bar = backtest(sim.url, tmp_path, *WEEK_2, preload=False)
    by_bar_gateway = backtest(sim.url, tmp_path / "other", *WEEK_2, preload=False)
    assert preloads == [5 * 78, 5 * 78]
    runs = [fetched, stored, by_bar, by_bar_gateway]
    assert all(run.rows == fetched.rows for run in runs)
    assert all(run.statuses == fetched.statuses for run in runs)
    assert all(lines_of(run.data) == lines_of(fetched.data) for run in runs)


def test_stamped_at_the_start_and_daily_bars_preload_as_bar_by_bar(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    for kw in ({"stamp": "start"}, {"timeframe": bt.TimeFrame.Days, "compression": 1}):
        IBKRCPStore._reset()
        store = IBKRCPStore(gateway_url=sim.url, bar_store=str(tmp_path))
        results = []
        for preload in (True, True, False):  # fetched, stored at once, stored bar by bar
            cerebro = bt.Cerebro(stdstats=False)
            data = store.getdata(
                dataname="AAPL", timeframe=kw.get("timeframe", bt.TimeFrame.Minutes),
                compression=kw.get("compression", 5), historical=True,
                fromdate=dt.datetime(2024, 1, 2), todate=dt.datetime(2024, 3, 15, 16),
                **{k: v for k, v in kw.items() if k == "stamp"},
            )  # fmt: skip
            cerebro.adddata(data, name="AAPL")
            cerebro.addstrategy(Recorder)
            (strategy,) = cerebro.run(runonce=False, preload=preload)
            results.append((strategy.rows, lines_of(data)))
        assert results[0] == results[1] == results[2]
        assert len(results[0][0]["AAPL"]) > 50


def test_a_cassette_replay_preloads_as_bar_by_bar(
    no_thread_leak: None, preloads: list[int]
) -> None:
    cassette = Path(__file__).resolve().parents[2] / "cassettes" / "aapl_msft_5min_synthetic.json"
    outcomes = []
    for preload in (True, False):
        IBKRCPStore._reset()
        store = IBKRCPStore(cassette=str(cassette))
        data = store.getdata(
            dataname="AAPL", timeframe=bt.TimeFrame.Minutes, compression=5, historical=True,
            fromdate=dt.datetime(2024, 1, 2), todate=dt.datetime(2024, 4, 1), tz="UTC",
        )  # fmt: skip
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(data, name="AAPL")
        cerebro.addstrategy(Recorder)
        (strategy,) = cerebro.run(runonce=False, preload=preload)
        outcomes.append((strategy.rows, strategy.statuses, lines_of(data)))
    assert preloads == [4992]
    assert outcomes[0] == outcomes[1]


def test_a_resampled_feed_is_loaded_bar_by_bar_with_the_same_bars(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path, preloads: list[int]
) -> None:
    rows = []
    for bar_store in (None, tmp_path, tmp_path):  # the gateway, then the store twice
        IBKRCPStore._reset()
        store = IBKRCPStore(gateway_url=sim.url, bar_store=bar_store)
        cerebro = bt.Cerebro(stdstats=False)
        data = store.getdata(
            dataname="AAPL", timeframe=bt.TimeFrame.Minutes, compression=5, historical=True,
            fromdate=WEEK_2[0], todate=WEEK_2[1],
        )  # fmt: skip
        cerebro.resampledata(data, name="AAPL", timeframe=bt.TimeFrame.Minutes, compression=30)
        cerebro.addstrategy(Recorder)
        (strategy,) = cerebro.run(runonce=False)
        rows.append(strategy.rows)
    assert preloads == []
    assert rows[0] == rows[1] == rows[2] and len(rows[0]["AAPL"]) == 5 * 13


# -- bad store files: typed errors that name the file, before any history request ----------


def test_a_corrupt_or_foreign_part_file_is_a_typed_error_naming_it(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    backtest(sim.url, tmp_path, *WEEK_2)
    part = tmp_path / AAPL_PART
    good = part.read_bytes()
    sim.stats.reset()
    part.write_bytes(good[: len(good) // 2])
    with pytest.raises(BarStoreCorrupt) as truncated:
        backtest(sim.url, tmp_path, *WEEK_2)
    assert str(part) in str(truncated.value) and truncated.value.path == str(part)
    pq.write_table(pa.table({"when": [1, 2], "price": [1.0, 2.0]}), part)
    with pytest.raises(BarStoreCorrupt) as foreign:
        backtest(sim.url, tmp_path, *WEEK_2)
    assert str(part) in str(foreign.value)
    assert sim.stats.requests[HISTORY] == 0


def test_a_store_of_a_newer_format_is_refused_naming_the_file(
    no_thread_leak: None, sim: GatewaySimulator, tmp_path: Path
) -> None:
    backtest(sim.url, tmp_path, *WEEK_2)
    marker = tmp_path / "_barstore.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, "version": data["version"] + 1}))
    sim.stats.reset()
    with pytest.raises(BarStoreVersionError, match=r"_barstore\.json") as newer:
        backtest(sim.url, tmp_path, *WEEK_2)
    assert "upgrade" in str(newer.value)
    assert sim.stats.requests[HISTORY] == 0


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder under /tmp that user ``nobody`` can reach (pytest's tmp_path is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="barstore-feed-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to setuid")
def test_a_store_this_user_cannot_write_is_a_typed_error_naming_the_file(
    no_thread_leak: None, sim: GatewaySimulator, shared_folder: Path
) -> None:
    bars = shared_folder / "bars"
    backtest(sim.url, bars, *WEEK_2)
    before = (bars / AAPL_PART).read_bytes()
    pacing = shared_folder / "pacing"
    pacing.mkdir()
    pacing.chmod(0o777)
    result = SPAWN.Queue()
    span = (WEEK_2[0], WEEK_3[1])
    child = SPAWN.Process(
        target=backtest_as, args=(NOBODY, str(pacing), sim.url, str(bars), span, result)
    )
    child.start()
    try:
        name, message, path = result.get(timeout=CHILD_SECONDS + 10)
    except queue.Empty:
        child.join(timeout=10)
        stacks = Path(f"{bars}.stacks").read_text(errors="replace")
        raise AssertionError(
            f"the child (exit code {child.exitcode}) did not answer; its threads:\n{stacks}"
        ) from None
    child.join(timeout=60)
    assert name == "BarStoreWriteError", message
    assert path is not None and path.startswith(str(bars)) and path in message
    assert "permission denied" in message
    assert (bars / AAPL_PART).read_bytes() == before


# -- several processes -------------------------------------------------------------------


def test_three_processes_filling_overlapping_spans_leave_the_ground_truth(
    sim: GatewaySimulator, tmp_path: Path
) -> None:
    spans = [
        (WEEK_1[0], WEEK_2[0] + dt.timedelta(days=2, hours=16)),  # Feb 26 - Mar 6
        (dt.datetime(2024, 2, 28), WEEK_2[1]),  # Feb 28 - Mar 8
        (dt.datetime(2024, 3, 6), WEEK_3[1]),  # Mar 6 - Mar 15
    ]
    ready, go, done = SPAWN.Queue(), SPAWN.Event(), SPAWN.Queue()
    children = [
        SPAWN.Process(target=fill_span, args=(sim.url, str(tmp_path), a, b, ready, go, done))
        for a, b in spans
    ]
    for child in children:
        child.start()
    for _ in spans:
        ready.get(timeout=120)
    go.set()
    seen = dict(done.get(timeout=300) for _ in spans)
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert [seen[a] for a, _ in spans] == [
        len(truth(sim, a, b + dt.timedelta(minutes=1))) for a, b in spans
    ]
    store = BarStore(tmp_path)
    start, end = ny(2024, 2, 26), ny(2024, 3, 16)
    assert len(store.coverage("AAPL", "5min")) == 1
    stored = [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in store.read(
        "AAPL", "5min", start, end)]  # fmt: skip
    expected = [
        (b.timestamp, b.open, b.high, b.low, b.close, b.volume)
        for b in sim.truth("AAPL", "5min", start, end)
    ]
    assert stored == expected
    assert sim.stats.rate_limited == 0
