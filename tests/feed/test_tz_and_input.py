"""Time zones (zoneinfo, pytz, strings) and bad input: clear notifications, never a hang."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import backtrader as bt
import pytest
import pytz

from backtrader_ibkr_cp import IBKRCPBroker, IBKRCPData, IBKRCPStore
from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.simulator import GatewaySimulator

UTC = dt.timezone.utc
NY = ZoneInfo("America/New_York")


class Seen(bt.Strategy):  # type: ignore[misc]
    def __init__(self) -> None:
        self.local: list[dt.datetime] = []
        self.utc: list[dt.datetime] = []
        self.statuses: list[str] = []
        self.messages: list[str] = []

    def notify_data(self, data: Any, status: int, *args: Any, **kwargs: Any) -> None:
        self.statuses.append(data._getstatusname(status))

    def notify_store(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.messages.append(str(msg))

    def next(self) -> None:
        self.local.append(self.data.datetime.datetime(0))
        self.utc.append(bt.num2date(self.data.datetime[0]).replace(tzinfo=UTC))


def run_one(data: Any) -> Seen:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(data)
    cerebro.addstrategy(Seen)
    (strategy,) = cerebro.run()
    return strategy  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("tz", "zone"),
    [
        (ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/Berlin")),
        (pytz.timezone("Asia/Tokyo"), ZoneInfo("Asia/Tokyo")),
        ("UTC", ZoneInfo("UTC")),
        (None, NY),  # default: the exchange's zone
    ],
    ids=["zoneinfo", "pytz", "string", "exchange-default"],
)
def test_output_tz_and_fromdate_in_that_tz(
    no_thread_leak: None, frozen_sim: GatewaySimulator, tz: Any, zone: ZoneInfo
) -> None:
    fromdate = dt.datetime(2024, 3, 14, 16, 0)  # read in the feed's tz
    data = IBKRCPData(
        dataname="AAPL",
        gateway_url=frozen_sim.url,
        timeframe=bt.TimeFrame.Minutes,
        compression=30,
        historical=True,
        fromdate=fromdate,
        todate=dt.datetime(2024, 3, 16),
        tz=tz,
    )
    strategy = run_one(data)
    assert strategy.utc
    first_allowed = fromdate.replace(tzinfo=zone)
    assert strategy.utc[0] >= first_allowed
    assert strategy.utc[0] - first_allowed < dt.timedelta(days=1)
    for local, utc in zip(strategy.local, strategy.utc, strict=False):
        assert local == utc.astimezone(zone).replace(tzinfo=None)


def test_unknown_tz_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        IBKRCPData(dataname="AAPL", tz="Mars/Olympus")


def test_unsupported_what_and_unknown_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="TRADES"):
        IBKRCPData(dataname="AAPL", what="BID")
    with pytest.raises(ConfigError, match="gatway_url"):
        IBKRCPData(dataname="AAPL", gatway_url="https://localhost:5000")


def quick(strategy_run: Callable[[], Seen]) -> Seen:
    """Run to the end without a bar and without the store ever backing off to try again
    (it says so in a store message when it does)."""
    strategy = strategy_run()
    assert not [m for m in strategy.messages if "trying again" in m], strategy.messages
    assert strategy.utc == []
    return strategy


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        # No contract is DISCONNECTED, as in backtrader's IB feed (NOTSUBSCRIBED means no
        # market-data permission); it was NOTSUBSCRIBED before.
        ({"dataname": "NOSUCH"}, "DISCONNECTED", "NOSUCH"),
        ({"dataname": "DUAL"}, "DISCONNECTED", "DUAL"),
        (
            {
                "dataname": "AAPL",
                "fromdate": dt.datetime(2024, 3, 1),
                "todate": dt.datetime(2024, 2, 1),
            },
            "DISCONNECTED",
            "fromdate",
        ),
        (
            {"dataname": "AAPL", "timeframe": bt.TimeFrame.Minutes, "compression": 7},
            "NOTSUPPORTED_TIMEFRAME",
            "Minutes/5",
        ),
        (
            {"dataname": "AAPL", "timeframe": bt.TimeFrame.Seconds, "compression": 5},
            "NOTSUPPORTED_TIMEFRAME",
            "Days/1",
        ),
    ],
    ids=["unknown-symbol", "ambiguous-symbol", "from-after-to", "minutes-7", "seconds"],
)
def test_bad_input_notifies_before_anything_runs(
    no_thread_leak: None,
    frozen_sim: GatewaySimulator,
    kwargs: dict[str, Any],
    status: str,
    words: str,
) -> None:
    store = IBKRCPStore(gateway_url=frozen_sim.url)
    strategy = quick(lambda: run_one(store.getdata(**kwargs)))
    assert strategy.statuses[-1] == status
    assert any(words in m for m in strategy.messages), strategy.messages


def test_unreachable_gateway_notifies_disconnected(no_thread_leak: None) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    store = IBKRCPStore(gateway_url=f"https://127.0.0.1:{port}", reconnect=0, timeout=2.0)
    strategy = quick(lambda: run_one(store.getdata(dataname="AAPL")))
    assert strategy.statuses == ["DISCONNECTED"]
    assert any(f"127.0.0.1:{port}" in m or "reach" in m for m in strategy.messages)


def test_stores_are_keyed_by_parameters_not_process_singletons() -> None:
    a = IBKRCPStore(gateway_url="https://127.0.0.1:5001")
    assert IBKRCPStore(gateway_url="https://127.0.0.1:5001") is a
    b = IBKRCPStore(gateway_url="https://127.0.0.1:5002")
    assert b is not a and b.p.gateway_url.endswith("5002")
    assert IBKRCPStore(gateway_url="https://127.0.0.1:5001", poll_interval=2.0) is not a
    assert isinstance(a.getbroker(simulated=True), bt.brokers.BackBroker)
    assert isinstance(a.getbroker(), IBKRCPBroker)
    with pytest.raises(ConfigError, match="poll_interval"):
        IBKRCPStore(pol_interval=1.0)
    IBKRCPStore._reset()
    assert IBKRCPStore(gateway_url="https://127.0.0.1:5001") is not a


def test_localizing_tz_gives_zoneinfo_and_plain_tzinfo_a_pytz_style_localize() -> None:
    from backtrader_ibkr_cp.bt.tz import LocalizingTzinfo, LocalizingZone, localizing_tz

    zone = localizing_tz(ZoneInfo("America/New_York"))
    assert isinstance(zone, LocalizingZone)
    winter = zone.localize(dt.datetime(2024, 3, 8, 12, 0))
    summer = zone.localize(dt.datetime(2024, 3, 11, 12, 0))  # after the DST change
    assert winter.utcoffset() == dt.timedelta(hours=-5)
    assert summer.utcoffset() == dt.timedelta(hours=-4)
    assert zone.localize(dt.datetime(2024, 3, 8, 17, tzinfo=UTC)) == winter  # aware: converted
    plain = localizing_tz(dt.timezone(dt.timedelta(hours=2)))
    assert isinstance(plain, LocalizingTzinfo)
    moment = plain.localize(dt.datetime(2024, 1, 1, 12))
    assert moment.astimezone(UTC) == dt.datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert dt.datetime(2024, 1, 1, 10, tzinfo=UTC).astimezone(plain).hour == 12
    tokyo = pytz.timezone("Asia/Tokyo")
    assert localizing_tz(tokyo) is tokyo and localizing_tz(None) is None
    with pytest.raises(ConfigError):
        localizing_tz(42)
