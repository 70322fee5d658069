"""Faults mid-run: the run continues with exactly the truth's bars, or stops with a typed,
explained error."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator

NY = ZoneInfo("America/New_York")
SESSION_OPEN = dt.datetime(2024, 3, 5, 9, 30)
MINUTE = dt.timedelta(minutes=1)


def faulty_run(
    sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    fault: Callable[[GatewaySimulator], None],
    *,
    live_bars: int = 4,
    store_kwargs: dict[str, Any] | None = None,
    before_run: bool = False,
) -> Any:
    """Run a live 1-minute AAPL feed from the session open; ``fault`` is applied after one
    live bar (or before the run: it then hits the backfill)."""

    class Faulty(recorder):  # type: ignore[misc,valid-type]
        injected = before_run

        def next(self) -> None:
            super().next()
            if not self.injected and len(self.live_rows["AAPL"]) >= 1:
                self.injected = True
                fault(sim)

    options: dict[str, Any] = {"poll_interval": 0.2, "streaming": "poll"}  # faults hit polls
    options.update(store_kwargs or {})
    store = IBKRCPStore(gateway_url=sim.url, **options)
    cerebro = bt.Cerebro(stdstats=False)
    data = store.getdata(
        dataname="AAPL",
        timeframe=bt.TimeFrame.Minutes,
        compression=1,
        fromdate=SESSION_OPEN,
        qcheck=0.1,
    )
    cerebro.adddata(data, name="AAPL")
    cerebro.addstrategy(Faulty, live_bars=live_bars)
    if before_run:
        fault(sim)
    strategy = run_cerebro(cerebro)
    assert strategy.injected
    return strategy


def assert_truth(sim: GatewaySimulator, rows: list[Any], to_rows: Callable[..., Any]) -> None:
    """The rows are exactly the truth from the session open (stamped at each bar's end)."""
    truth = sim.truth("AAPL", "1min", start=rows[0][0] - MINUTE, end=rows[-1][0])
    opened = SESSION_OPEN.replace(tzinfo=NY).astimezone(dt.timezone.utc)
    assert rows[0][0] == opened + MINUTE
    assert rows == to_rows(truth, "1min")


def inject(
    kind: str, count: int = 1, path: str | None = None
) -> Callable[[GatewaySimulator], None]:
    def do(sim: GatewaySimulator) -> None:
        sim.inject(kind, count, path=path)

    return do


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(lambda sim: sim.expire_session(), id="session-expiry"),
        pytest.param(lambda sim: sim.compete(), id="competing-login"),
        pytest.param(inject("http_429", 2, "/iserver/marketdata/snapshot"), id="429"),
        pytest.param(inject("http_503", 8), id="503-burst"),
        pytest.param(inject("reset", 3), id="connection-reset"),
        pytest.param(inject("malformed", 2), id="malformed-body"),
        pytest.param(lambda sim: sim.inject("timeout", 1, seconds=2.0), id="timeout"),
        pytest.param(inject("duplicate_bars", 2), id="duplicate-bars"),
        pytest.param(inject("no_data", 2), id="no-data"),
    ],
)
def test_run_continues_with_exactly_the_truth(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
    fault: Callable[[GatewaySimulator], None],
) -> None:
    strategy = faulty_run(live_sim, recorder, run_cerebro, fault)
    assert live_sim.pending_faults == 0  # every injected failure was met
    assert len(strategy.live_rows["AAPL"]) >= 4
    assert_truth(live_sim, strategy.rows["AAPL"], to_rows)


def test_rate_limits_and_reauthentication_reach_notify_store(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
) -> None:
    def faults(sim: GatewaySimulator) -> None:
        sim.inject("http_429", 1, path="/iserver/marketdata/snapshot")
        sim.expire_session()

    strategy = faulty_run(live_sim, recorder, run_cerebro, faults, live_bars=4)
    text = " | ".join(strategy.messages).lower()
    assert "rate limited" in text
    assert "reauth" in text or "session" in text


def test_an_invalid_bar_is_reported_to_notify_store(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    strategy = faulty_run(
        live_sim, recorder, run_cerebro, inject("invalid_bar", 1), live_bars=3, before_run=True
    )
    assert any("invalid bar" in m and "high" in m for m in strategy.messages)
    assert_truth(live_sim, strategy.rows["AAPL"], to_rows)


def test_strict_mode_stops_on_an_invalid_bar_with_a_typed_explained_error(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
) -> None:
    strategy = faulty_run(
        live_sim,
        recorder,
        run_cerebro,
        inject("invalid_bar", 3),
        live_bars=50,
        store_kwargs={"strict": True},
        before_run=True,
    )
    assert strategy.statuses[-1] == ("AAPL", "DISCONNECTED")
    assert strategy.rows["AAPL"] == []
    assert any("invalid bar" in m and "high" in m for m in strategy.messages)


def test_a_gateway_that_stays_down_ends_in_disconnected(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
) -> None:
    def outage(sim: GatewaySimulator) -> None:
        sim.inject("http_503", 10_000, path="/")

    strategy = faulty_run(
        live_sim,
        recorder,
        run_cerebro,
        outage,
        live_bars=50,
        store_kwargs={"reconnect": 1, "reconnect_timeout": 0.1, "stall_timeout": 1.0},
    )
    names = [s for _, s in strategy.statuses]
    assert names[-2:] == ["CONNBROKEN", "DISCONNECTED"]
    assert any("gave up reconnecting" in m for m in strategy.messages)


def test_a_snapshot_stall_breaks_the_connection_then_live_resumes_without_loss(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    def stall(sim: GatewaySimulator) -> None:  # every snapshot fails for a few seconds
        sim.inject("http_503", 8, path="/iserver/marketdata/snapshot")

    strategy = faulty_run(
        live_sim, recorder, run_cerebro, stall, live_bars=8, store_kwargs={"stall_timeout": 1.0}
    )
    names = [s for _, s in strategy.statuses]
    assert names[:3] == ["CONNECTED", "DELAYED", "LIVE"]
    assert "CONNBROKEN" in names and names[-1] == "LIVE"
    assert any("connection broken" in m for m in strategy.messages)
    assert_truth(live_sim, strategy.rows["AAPL"], to_rows)


def test_an_outage_gives_one_message_per_change_of_state_and_the_run_rides_it_out(
    no_thread_leak: None,
    live_sim: GatewaySimulator,
    recorder: type,
    run_cerebro: Callable[..., Any],
    to_rows: Callable[..., Any],
) -> None:
    """Bug: a live run ended after a gateway outage of about 50 s (reconnect=3 by default),
    and the user got one store message per HTTP retry, per endpoint, per feed (189 in 53 s).
    Now the default reconnects until the gateway is back, and each feed says what happened
    once: connection broken, reconnection failing, reconnected."""

    def outage(sim: GatewaySimulator) -> None:
        sim.inject("http_503", 40, path="/")  # every request fails until 40 were refused

    strategy = faulty_run(
        live_sim,
        recorder,
        run_cerebro,
        outage,
        live_bars=6,
        store_kwargs={"reconnect_timeout": 0.1, "stall_timeout": 1.0},
    )
    assert live_sim.pending_faults == 0
    names = [s for _, s in strategy.statuses]
    assert "CONNBROKEN" in names and names[-1] == "LIVE"
    assert len(strategy.messages) <= 6, strategy.messages
    assert len(set(strategy.messages)) == len(strategy.messages)  # no message repeated
    assert_truth(live_sim, strategy.rows["AAPL"], to_rows)
