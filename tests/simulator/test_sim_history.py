"""``/iserver/marketdata/history`` over real HTTPS: window semantics, limits, shapes, schema."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits

UTC = timezone.utc
NOW = datetime(2024, 3, 5, 15, 0, 30, tzinfo=UTC)  # the `sim` fixture's frozen clock
IBKR_HISTORY_KEYS = {
    "serverId", "symbol", "text", "priceFactor", "startTime", "high", "low", "timePeriod",
    "barLength", "mdAvailability", "outsideRth", "tradingDayDuration", "volumeFactor",
    "priceDisplayRule", "priceDisplayValue", "chartPanStartTime", "direction",
    "negativeCapable", "messageVersion", "travelTime", "data", "points", "mktDataDelay",
}  # fmt: skip
SCHEMAS = json.loads((Path(__file__).parent / "fixtures" / "ibkr_openapi_schemas.json").read_text())


def _times(body: dict[str, Any]) -> list[datetime]:
    return [datetime.fromtimestamp(bar["t"] / 1000, tz=UTC) for bar in body["data"]]


def test_start_time_is_an_exclusive_end_anchor(client: Any, sim: GatewaySimulator) -> None:
    body = client.history(bar="1min", period="30min", startTime="20240305-14:45:00").json()
    times = _times(body)
    # 14:15-14:45 UTC is cut to the session: 09:30-09:44 New York, 15 bars.
    assert times[0] == datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    assert times[-1] == datetime(2024, 3, 5, 14, 44, tzinfo=UTC)
    assert len(times) == 15
    assert body["startTime"] == "20240305-14:30:00"
    assert body["chartPanStartTime"] == "20240305-14:45:00"
    truth = sim.truth("AAPL", "1min", start=times[0], end=times[-1] + timedelta(minutes=1))
    assert [(b["o"], b["h"], b["l"], b["c"]) for b in body["data"]] == [
        (t.open, t.high, t.low, t.close) for t in truth
    ]
    # `v` is volume in lots of 100: the client multiplies by 100 (and rounds) to get shares.
    assert [round(b["v"] * 100) for b in body["data"]] == [t.volume for t in truth]


def test_day_periods_reach_back_in_sessions(client: Any) -> None:
    times = _times(client.history(bar="1h", period="2d").json())
    # Monday's 7 RTH hours, then Tuesday's 09:30 and the forming 10:00 bar.
    assert times[0] == datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    assert times[-2:] == [
        datetime(2024, 3, 5, 14, 30, tzinfo=UTC),
        datetime(2024, 3, 5, 15, 0, tzinfo=UTC),
    ]
    assert len(times) == 9
    # Across the weekend: 2 sessions before Monday's open are Thursday and Friday.
    times = _times(client.history(bar="1h", period="2d", startTime="20240304-14:30:00").json())
    assert {t.date() for t in times} == {datetime(2024, 2, 29).date(), datetime(2024, 3, 1).date()}


def test_forming_bar_is_included_with_values_so_far(client: Any, sim: GatewaySimulator) -> None:
    body = client.history(bar="1min", period="5min").json()
    last = body["data"][-1]
    assert datetime.fromtimestamp(last["t"] / 1000, tz=UTC) == datetime(
        2024, 3, 5, 15, 0, tzinfo=UTC
    )
    completed = sim.truth("AAPL", "1min", start=datetime(2024, 3, 5, 14, 55, tzinfo=UTC))
    assert [round(b["v"] * 100) for b in body["data"][:-1]] == [b.volume for b in completed]
    assert completed[-1].timestamp == datetime(2024, 3, 5, 14, 59, tzinfo=UTC)
    # The forming minute opened at the previous close and has traded for 30 of 60 seconds.
    assert last["o"] == completed[-1].close
    assert last["l"] <= last["c"] <= last["h"]
    assert last["v"] > 0


def test_outside_rth_returns_extended_hours(client: Any) -> None:
    times = _times(
        client.history(
            bar="5min", period="1h", startTime="20240305-14:00:00", outsideRth="true"
        ).json()
    )
    assert times[0] == datetime(2024, 3, 5, 13, 0, tzinfo=UTC)  # 08:00 New York
    assert len(times) == 12
    rth = client.history(bar="5min", period="1h", startTime="20240305-14:00:00").json()
    assert rth == {"error": "No data."}


def test_empty_window_answers_no_data(client: Any) -> None:
    response = client.history(bar="1min", period="1h", startTime="20240302-18:00:00")  # Sat
    assert response.status_code == 200
    assert response.json() == {"error": "No data."}
    # Nothing exists after the gateway's now either.
    future = client.history(bar="1min", period="30min", startTime="20240305-20:00:00")
    assert future.json() == {"error": "No data."}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bar": "7min", "period": "1d"}, "bar size '7min' is not supported"),
        ({"bar": "1min", "period": "40min"}, "out of range"),
        ({"bar": "1min", "period": "3d"}, "use one of 10min"),
        ({"bar": "1d", "period": "1d"}, "not allowed with period"),
        ({"bar": "1min", "period": "1d", "startTime": "2024-03-05 14:00"}, "startTime"),
        ({"bar": "1min", "period": "1d", "outsideRth": "maybe"}, "outsideRth"),
        ({"bar": "1min", "period": "1d", "conid": "abc"}, "conid must be an integer"),
        ({"bar": "1min", "period": "1d", "conid": "999"}, "not a known contract"),
        ({"period": "1d"}, "bar is required"),
    ],
)
def test_bad_parameters_answer_400(client: Any, params: dict[str, str], message: str) -> None:
    response = client.history(**params)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    assert message in response.json()["error"]


def test_at_most_max_points_most_recent_kept(client_for: Any) -> None:
    start = datetime(2024, 3, 5, 20, 0, tzinfo=UTC)
    with GatewaySimulator(speed=0, start=start, limits=SimLimits(history_max_points=50)) as sim:
        body = client_for(sim).history(bar="1min", period="1d").json()
    assert body["points"] == len(body["data"]) == 50
    assert _times(body)[-1] == datetime(2024, 3, 5, 19, 59, tzinfo=UTC)


def test_response_follows_ibkr_shape_and_openapi_schema(client: Any) -> None:
    body = client.history(bar="1d", period="1w").json()
    schema = {"$defs": SCHEMAS["$defs"], "$ref": "#/$defs/iserverHistoryResponse"}
    jsonschema.validate(body, schema)
    # Every key of IBKR's own example (reference/samples/history_1d_AAPL.json), with the
    # `serverId` spelling of the schema and of real recordings.
    assert set(body) >= IBKR_HISTORY_KEYS
    assert body["direction"] == -1 and body["messageVersion"] == 2
    assert body["barLength"] == 86400 and body["timePeriod"] == "1w"
    assert body["mdAvailability"] == "RpB" and body["mktDataDelay"] == 0
    high = max(bar["h"] for bar in body["data"])
    assert body["high"].split("/")[0] == str(round(high * 100))
    # Daily bars stamped at the 09:30 New York session start.
    assert all(t.time() == datetime(2024, 1, 1, 14, 30).time() for t in _times(body))
