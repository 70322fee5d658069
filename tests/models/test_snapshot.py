"""Snapshot parsing on IBKR's examples and real recordings, edge values and fuzzed bodies."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_ibkr_cp.errors import DataIntegrityError, DataUnavailable, MarketError
from backtrader_ibkr_cp.models.market import Snapshot
from backtrader_ibkr_cp.models.snapshot import DEFAULT_FIELDS, FIELDS, parse_snapshots

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_default_fields_are_documented_and_within_the_50_field_limit() -> None:
    assert DEFAULT_FIELDS == (
        "31", "55", "70", "71", "84", "85", "86", "88", "7059", "7762", "87", "7295", "7741",
        "6509",
    )  # fmt: skip
    assert all(code in FIELDS for code in DEFAULT_FIELDS)
    assert len(DEFAULT_FIELDS) <= 50


def test_ibkr_doc_example() -> None:
    aapl, ibm = parse_snapshots(load("snapshot_fields.json"))
    updated = datetime(2024, 4, 8, 17, 21, 51, 593000, tzinfo=timezone.utc)
    assert aapl.conid == 265598
    assert aapl.timestamp == updated
    assert (aapl.last, aapl.bid, aapl.ask) == (168.42, 168.41, 168.42)
    assert (aapl.bid_size, aapl.ask_size, aapl.last_size) == (1300.0, 600.0, 100.0)
    assert aapl.availability.realtime and aapl.availability.code == "RpB"
    assert aapl.volume is None and aapl.symbol is None
    assert not aapl.is_preflight and not aapl.last_is_prior_close and not aapl.halted
    assert ibm.conid == 8314 and ibm.last == 189.60
    quote = ibm.quote()
    assert (quote.bid_price, quote.ask_price) == (189.56, 189.61)
    assert quote.spread() == pytest.approx(0.05)
    assert aapl.raw["server_id"] == "q1"


def test_real_recording_with_delayed_data_and_exact_volume() -> None:
    (snap,) = parse_snapshots(load("snapshot_AAPL_recorded_2023-09-13.json"))
    assert snap.symbol == "AAPL"
    assert snap.volume == 83_916_700.0
    assert snap.availability.delayed and not snap.availability.realtime
    tick = snap.tick()
    assert tick.price == 173.96 and tick.size is None
    assert tick.timestamp == datetime(2023, 9, 13, 21, 14, 59, 133000, tzinfo=timezone.utc)


def test_websocket_message_has_the_same_shape() -> None:
    (snap,) = parse_snapshots([load("ws_smd_message_ibkr_doc.json")])
    assert snap.conid == 8314 and snap.last == 189.60


@pytest.mark.parametrize(
    "name", ["snapshot_preflight_ibkr_doc.json", "snapshot_preflight_recorded.json"]
)
def test_preflight_entries_have_no_fields(name: str) -> None:
    snaps = parse_snapshots(load(name))
    assert snaps and all(s.is_preflight for s in snaps)
    assert snaps[0] == Snapshot(conid=265598)
    with pytest.raises(DataUnavailable, match="265598"):
        snaps[0].quote()


@pytest.mark.parametrize(
    ("text", "close", "halted"), [("C173.96", True, False), ("H12.5", False, True)]
)
def test_last_price_prefixes_become_flags(text: str, close: bool, halted: bool) -> None:
    (snap,) = parse_snapshots([{"conid": 1, "31": text}])
    assert snap.last == float(text[1:])
    assert (snap.last_is_prior_close, snap.halted) == (close, halted)


def test_exact_volume_is_preferred_over_formatted() -> None:
    (both,) = parse_snapshots([{"conid": 1, "7762": "25512345", "87": "25.5M"}])
    (formatted,) = parse_snapshots([{"conid": 1, "87": "25.5M"}])
    assert both.volume == 25_512_345.0
    assert formatted.volume == 25_500_000.0


def test_all_default_fields() -> None:
    entry = {
        "conid": "265598", "31": "101.5", "55": "AAPL", "70": "102", "71": "99.5", "84": "101.4",
        "85": "2,000", "86": "101.6", "88": "1,300", "7059": "300", "7762": "1000", "87": "1K",
        "7295": "100", "7741": "C99", "6509": "N", "_updated": 1700000000000,
    }  # fmt: skip
    (snap,) = parse_snapshots([entry])
    assert snap == Snapshot(
        conid=265598, timestamp=datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc),
        last=101.5, last_size=300.0, bid=101.4, ask=101.6, bid_size=1300.0, ask_size=2000.0,
        volume=1000.0, day_open=100.0, day_high=102.0, day_low=99.5, prior_close=99.0,
        symbol="AAPL", availability=snap.availability,
    )  # fmt: skip
    assert not snap.availability.subscribed


def test_empty_strings_mean_not_available_yet() -> None:
    (snap,) = parse_snapshots([{"conid": 1, "31": "", "84": " ", "7762": ""}])
    assert snap.last is None and snap.bid is None and snap.volume is None


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"conid": 265598, "31": "abc"}, "field 31"),
        ({"conid": 265598, "88": "1,30"}, "field 88"),
        ({"conid": 265598, "87": "lots"}, "field 87"),
        ({"conid": 265598, "7762": "-5"}, "field 7762"),
        ({"conid": 265598, "_updated": "yesterday"}, "_updated"),
        ({"conid": 265598, "_updated": 1e300}, "_updated"),
        ({"conid": 265598, "55": 7}, "field 55"),
        ({"conid": 265598, "6509": ["R"]}, "field 6509"),
    ],
)
def test_bad_values_name_conid_and_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(DataIntegrityError, match="conid 265598") as info:
        parse_snapshots([entry])
    assert field in str(info.value)
    assert info.value.context["conid"] == 265598


@pytest.mark.parametrize(
    "entry", [{"conidEx": "1"}, {"conid": "x"}, {"conid": True}, {"conid": -3}, "x"]
)
def test_missing_or_garbage_conid(entry: object) -> None:
    with pytest.raises(DataIntegrityError, match="conid"):
        parse_snapshots([entry])


@pytest.mark.parametrize("body", [{"error": "x"}, None, "text", 5])
def test_non_list_body(body: object) -> None:
    with pytest.raises(DataIntegrityError, match="not a list"):
        parse_snapshots(body)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
values = scalars | st.sampled_from(["1,300", "C1.5", "H2", "25.5M", "830K", "RpB", "", "-1"])
keys = st.sampled_from(["conid", "_updated", *FIELDS]) | st.text(max_size=4)
json_like = st.recursive(
    values,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
entries = st.dictionaries(keys, values, max_size=10).map(lambda d: {"conid": 1, **d}) | json_like


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, max_size=4) | json_like)
def test_fuzz_raises_only_market_errors(body: object) -> None:
    try:
        snaps = parse_snapshots(body)
    except MarketError:
        return
    assert all(isinstance(s, Snapshot) and s.conid > 0 for s in snaps)
