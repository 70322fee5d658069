"""History parsing on IBKR's example and real recordings, in-band errors, and fuzzed bodies."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtrader_ibkr_cp.errors import (
    ApiError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    MarketError,
)
from backtrader_ibkr_cp.models.bar import Bar
from backtrader_ibkr_cp.models.history import HistoryResponse, parse_history, parse_history_time

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def test_ibkr_spec_example() -> None:
    response = parse_history(load("history_1d_AAPL.json"))
    assert response.symbol == "AAPL"
    assert response.server_id == "20477"  # spelled "serverid" in IBKR's example
    assert response.availability.realtime
    assert response.price_factor == 100.0
    assert response.delay_seconds == 0.0
    assert response.start_time == datetime(2023, 8, 18, 8, 0, tzinfo=timezone.utc)
    assert response.bars == [
        Bar(
            datetime(2023, 8, 18, 8, 0, tzinfo=timezone.utc), 173.4, 175.1, 171.7, 174.7, 47211745.0
        )
    ]


def test_real_recording_prices_are_not_scaled_and_volume_is_in_lots() -> None:
    response = parse_history(load("history_1m_AAPL_ibind.json"))
    assert response.server_id == "195436"
    (bar,) = response.bars  # "points": 0 is wrong: the bar count is len(data)
    assert bar.timestamp == datetime(2023, 11, 1, tzinfo=timezone.utc)
    assert (bar.open, bar.high, bar.low, bar.close) == (171.05, 192.93, 170.12, 189.37)
    assert bar.volume == 694_299_804.0  # 6942998.04 lots of 100 shares
    assert (
        parse_history(load("history_1m_AAPL_ibind.json"), volume_multiplier=1.0).bars[0].volume
        == 6942998.04
    )


def test_delayed_recording() -> None:
    response = parse_history(load("history_1m_CDN_delayed_ibind.json"))
    assert response.availability.delayed
    assert response.delay_seconds == 900.0
    assert response.price_factor == 200.0
    assert response.bars[0].close == 0.32
    assert response.text == "CDN MAVERICK CAPITAL CORP"


def test_no_data_is_data_unavailable() -> None:
    with pytest.raises(DataUnavailable, match="No data") as info:
        parse_history({"error": "No data."})
    assert info.value.gateway_message == "No data."
    assert info.value.endpoint == "/iserver/marketdata/history"


def test_other_in_band_errors_are_api_errors_with_the_gateway_message() -> None:
    with pytest.raises(ApiError) as info:
        parse_history({"error": "Chart data is not available"})
    assert not isinstance(info.value, DataUnavailable)
    assert info.value.gateway_message == "Chart data is not available"
    assert "Chart data is not available" in str(info.value)


def test_invalid_bars_are_kept_for_the_validator() -> None:
    body = {"symbol": "X", "data": [{"t": 1000, "o": 1, "h": 1, "l": 2, "c": 1, "v": 0}]}
    (bar,) = parse_history(body).bars
    assert bar.problems()


def test_empty_data_and_defaults() -> None:
    response = parse_history({"data": []})
    assert response == HistoryResponse(symbol="", bars=[])
    assert response.start_time is None


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        ({"o": 1, "h": 1, "l": 1, "c": 1, "v": 1}, "t"),
        ({"t": 1, "o": "1", "h": 1, "l": 1, "c": 1, "v": 1}, "o"),
        ({"t": 1, "o": 1, "h": 1, "l": 1, "c": 1, "v": True}, "v"),
        ({"t": 1e300, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}, "t"),
        ({"t": float("nan"), "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}, "t"),
        ({"t": 10**400, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}, "t"),
        ([1, 2, 3], "not an object"),
    ],
)
def test_malformed_bars_name_the_index(entry: object, what: str) -> None:
    good = {"t": 1, "o": 1, "h": 1, "l": 1, "c": 1, "v": 1}
    with pytest.raises(DataIntegrityError, match="bar #1") as info:
        parse_history({"data": [good, entry]})
    assert what in str(info.value)


@pytest.mark.parametrize("body", [[], "x", None, {"symbol": "A"}, {"data": {}}])
def test_malformed_bodies(body: object) -> None:
    with pytest.raises(DataIntegrityError):
        parse_history(body)


@pytest.mark.parametrize("multiplier", [0, -1, float("nan"), float("inf"), True])
def test_bad_volume_multiplier(multiplier: float) -> None:
    with pytest.raises(ConfigError, match="volume_multiplier"):
        parse_history({"data": []}, volume_multiplier=multiplier)


def test_volume_rounding_removes_float_noise() -> None:
    body = {"data": [{"t": 1, "o": 1, "h": 1, "l": 1, "c": 1, "v": 0.29}]}
    assert parse_history(body).bars[0].volume == 29.0  # 0.29 * 100 = 28.999999999999996


def test_history_time_format() -> None:
    assert parse_history_time("20230821-13:30:00") == datetime(
        2023, 8, 21, 13, 30, tzinfo=timezone.utc
    )
    with pytest.raises(ValueError):
        parse_history_time("2023-08-21")


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
keys = st.sampled_from(["t", "o", "h", "l", "c", "v"])
bar_like = st.dictionaries(keys, scalars | st.integers(0, 2 * 10**12), max_size=6) | scalars
top_keys = st.sampled_from(
    ["symbol", "startTime", "mdAvailability", "mktDataDelay", "priceFactor", "serverId",
     "serverid", "points", "text", "error"]
)  # fmt: skip
json_like = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner)
)
bodies = st.builds(
    lambda extra, data: {**extra, "data": data},
    st.dictionaries(top_keys, scalars, max_size=5),
    st.lists(bar_like, max_size=4) | json_like,
)


@settings(max_examples=300, deadline=None)
@given(bodies | json_like)
def test_fuzz_raises_only_market_errors(body: object) -> None:
    try:
        response = parse_history(body)
    except MarketError:
        return
    assert all(isinstance(bar, Bar) for bar in response.bars)
    assert all(bar.timestamp.tzinfo is timezone.utc for bar in response.bars)
