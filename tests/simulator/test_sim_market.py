"""The seeded market: determinism, bar consistency, continuity and exact aggregation."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimBar
from backtrader_ibkr_cp.simulator.instruments import default_instruments
from backtrader_ibkr_cp.simulator.market import MarketModel, generate_day

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
AAPL = default_instruments()[0]
FRIDAY_EVENING = datetime(2024, 3, 8, 23, 0, tzinfo=UTC)  # 18:00 New York, RTH done


def _aggregate(bars: list[SimBar]) -> tuple[float, float, float, float, float]:
    return (
        bars[0].open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        sum(b.volume for b in bars),
    )


def test_same_seed_same_bars_other_seed_differs() -> None:
    day = date(2024, 3, 5)
    first, again = generate_day(3, AAPL, day), generate_day(3, AAPL, day)
    other = generate_day(4, AAPL, day)
    assert first == again
    assert list(first.close) != list(other.close)


def test_bars_are_stable_across_processes() -> None:
    # String seeds, never hash(): another interpreter (other PYTHONHASHSEED) agrees.
    code = (
        "from datetime import date;"
        "from backtrader_ibkr_cp.simulator.instruments import default_instruments as d;"
        "from backtrader_ibkr_cp.simulator.market import generate_day as g;"
        "b = g(3, d()[0], date(2024, 3, 5)); print(sum(b.close), sum(b.volume))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    bars = generate_day(3, AAPL, date(2024, 3, 5))
    assert result.stdout.split() == [str(sum(bars.close)), str(sum(bars.volume))]


def test_minute_bars_are_consistent_and_realistic() -> None:
    bars = generate_day(0, AAPL, date(2024, 3, 5))
    for i in range(960):
        o, h, l, c = bars.open[i], bars.high[i], bars.low[i], bars.close[i]  # noqa: E741
        assert 0 < l <= min(o, c) <= max(o, c) <= h
        assert bars.volume[i] >= 1
        if i:
            assert o == bars.close[i - 1]
    rth = list(bars.volume[330:720])
    # U-shaped volume: the first and last RTH minutes trade more than midday; ETH is thin.
    assert sum(rth[:10]) > 2 * sum(rth[190:200])
    assert sum(rth[-10:]) > 2 * sum(rth[190:200])
    assert max(bars.volume[:330]) < sum(rth) / 390
    assert 1_000_000 < sum(rth) < 500_000_000


def test_day_opens_near_prior_close_and_closes_at_anchor() -> None:
    market = MarketModel(0)
    monday, tuesday = date(2024, 3, 4), date(2024, 3, 5)
    assert market.day(AAPL, tuesday).prior_close == market.day(AAPL, monday).close[719]
    friday = market.day(AAPL, date(2024, 3, 1))
    assert market.day(AAPL, monday).prior_close == friday.close[719]
    gap = market.day(AAPL, tuesday).open[0] / market.day(AAPL, tuesday).prior_close
    assert 0.95 < gap < 1.05


def test_prices_stay_plausible_over_years() -> None:
    market = MarketModel(0)
    closes = [
        market.summary(AAPL, date(2015, 1, 5) + timedelta(days=7 * week), False)[3]
        for week in range(0, 520, 13)
    ]
    assert all(0.3 * 18500 < c < 3 * 18500 for c in closes)
    assert len(set(closes)) == len(closes)


def test_coarser_bars_are_exact_aggregations_of_minutes() -> None:
    with GatewaySimulator(seed=2, speed=0, start=FRIDAY_EVENING, tls=False) as sim:
        day_start = datetime(2024, 3, 8, 14, 30, tzinfo=UTC)
        minutes = sim.truth("AAPL", "1min", start=day_start)
        assert len(minutes) == 390
        session_end = datetime(2024, 3, 8, 21, 0, tzinfo=UTC)
        for bar in ("5min", "15min", "1h", "4h"):
            coarse = sim.truth("AAPL", bar, start=day_start)
            bounds = [b.timestamp for b in coarse] + [session_end]
            assert bounds[0] == day_start
            for item, stop in zip(coarse, bounds[1:], strict=True):
                inside = [m for m in minutes if item.timestamp <= m.timestamp < stop]
                assert _aggregate(inside) == (
                    item.open,
                    item.high,
                    item.low,
                    item.close,
                    item.volume,
                ), (bar, item)
        daily = sim.truth("AAPL", "1d", start=day_start)
        assert len(daily) == 1
        assert _aggregate(minutes) == (
            daily[0].open,
            daily[0].high,
            daily[0].low,
            daily[0].close,
            daily[0].volume,
        )
        # Outside RTH from 04:00 New York; at 18:00 the ETH daily bar is still forming.
        eth_start = datetime(2024, 3, 8, 9, 0, tzinfo=UTC)
        eth = sim.truth("AAPL", "1min", start=eth_start, outside_rth=True)
        assert len(eth) == 14 * 60
        assert eth[0].timestamp == eth_start
        assert sim.truth("AAPL", "1d", start=eth_start, outside_rth=True) == []


def test_weekly_and_monthly_bars_aggregate_days() -> None:
    with GatewaySimulator(seed=2, speed=0, start=datetime(2024, 4, 1, 12, tzinfo=UTC)) as sim:
        days = sim.truth("IBM", "1d", start=datetime(2024, 3, 1, tzinfo=UTC))
        weeks = sim.truth("IBM", "1w", start=datetime(2024, 3, 1, tzinfo=UTC))
        months = sim.truth("IBM", "1m", start=datetime(2024, 3, 1, tzinfo=UTC))
        assert len(days) == 21  # March 2024 has 21 weekdays
        assert [m.timestamp for m in months] == [datetime(2024, 3, 1, 14, 30, tzinfo=UTC)]
        assert _aggregate(days) == _aggregate([months[0]])
        # Weeks stamped on Mondays 09:30 New York; the week of Feb 26 starts before `start`.
        assert [w.timestamp.date() for w in weeks] == [
            date(2024, 3, 4),
            date(2024, 3, 11),
            date(2024, 3, 18),
            date(2024, 3, 25),
        ]
        week_days = [d for d in days if date(2024, 3, 11) <= d.timestamp.date() < date(2024, 3, 18)]
        assert _aggregate(week_days) == _aggregate([weeks[1]])


def test_no_weekend_bars() -> None:
    with GatewaySimulator(seed=1, speed=0, start=datetime(2024, 3, 12, tzinfo=UTC)) as sim:
        bars = sim.truth("MSFT", "1h", start=datetime(2024, 3, 1, tzinfo=UTC), outside_rth=True)
        assert bars
        assert all(b.timestamp.astimezone(NEW_YORK).weekday() < 5 for b in bars)
        weekend = datetime(2024, 3, 9, 5, tzinfo=UTC), datetime(2024, 3, 11, 8, tzinfo=UTC)
        assert not [b for b in bars if weekend[0] <= b.timestamp < weekend[1]]


def test_a_day_three_years_back_is_served(client_for: Any) -> None:
    """How fast it is served is measured in ``bench/``, not here."""
    with GatewaySimulator(seed=5, speed=0, start=datetime(2024, 3, 5, 21, tzinfo=UTC)) as sim:
        client = client_for(sim)
        body = client.history(
            conid=sim.conid("NVDA"), bar="1min", period="1d", startTime="20210302-21:00:00"
        ).json()
        assert len(body["data"]) == 390
        assert (
            body["data"][0]["t"] == int(datetime(2021, 3, 2, 14, 30, tzinfo=UTC).timestamp()) * 1000
        )
        truth = sim.truth(
            "NVDA",
            "1min",
            start=datetime(2021, 3, 2, 14, 30, tzinfo=UTC),
            end=datetime(2021, 3, 2, 21, 0, tzinfo=UTC),
        )
        assert [bar["c"] for bar in body["data"]] == [bar.close for bar in truth]
