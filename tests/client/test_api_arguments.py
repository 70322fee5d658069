"""ApiClient validates its arguments before anything is sent (a closed port proves it: any
request would fail with GatewayConnectionError instead of ConfigError)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp.client.api import ApiClient, format_start_time
from backtrader_ibkr_cp.client.retry import RetryPolicy
from backtrader_ibkr_cp.client.transport import Transport
from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.models.timeframe import Timeframe


@pytest.fixture
def api(closed_port: int) -> Iterator[ApiClient]:
    transport = Transport(f"http://127.0.0.1:{closed_port}", retry=RetryPolicy.no_retries())
    yield ApiClient(transport)
    transport.close()


def test_start_time_is_utc_in_ibkrs_format() -> None:
    eastern = timezone(timedelta(hours=-5))
    assert format_start_time(datetime(2024, 1, 2, 16, 0, tzinfo=eastern)) == "20240102-21:00:00"
    assert format_start_time(datetime(2024, 1, 2, 9, 5, 7, tzinfo=timezone.utc)) == (
        "20240102-09:05:07"
    )


def test_naive_start_time_is_refused(api: ApiClient) -> None:
    with pytest.raises(ConfigError, match="no time zone"):
        api.history(265598, "1min", "1d", start_time=datetime(2024, 1, 2, 16, 0))


@pytest.mark.parametrize("bar", ["7min", "1M", "", "1 min"])
def test_bad_bar_lists_the_valid_ones(api: ApiClient, bar: str) -> None:
    with pytest.raises(ConfigError, match="1min, 2min, 3min, 5min"):
        api.history(265598, bar, "1d")


@pytest.mark.parametrize("period", ["31min", "9h", "0d", "1001d", "16y", "1x", "d", "1 d"])
def test_bad_period(api: ApiClient, period: str) -> None:
    with pytest.raises(ConfigError, match="1-30min, 1-8h"):
        api.history(265598, "1min", period)


@pytest.mark.parametrize("conid", [0, -5, "265598", 1.5, True, None])
def test_bad_conid(api: ApiClient, conid: object) -> None:
    with pytest.raises(ConfigError, match="conid"):
        api.history(conid, Timeframe.MINUTE_5, "1d")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="conid"):
        api.snapshot([conid])  # type: ignore[list-item]


def test_snapshot_field_limits(api: ApiClient) -> None:
    with pytest.raises(ConfigError, match="1-50"):
        api.snapshot([265598], [str(i) for i in range(51)])
    with pytest.raises(ConfigError, match="1-50"):
        api.snapshot([265598], [])
    with pytest.raises(ConfigError, match="1-50"):
        api.snapshot([265598], ["last"])


def test_empty_symbol(api: ApiClient) -> None:
    with pytest.raises(ConfigError, match="symbol"):
        api.secdef_search("  ")


def test_empty_snapshot_request_sends_nothing(api: ApiClient) -> None:
    assert api.snapshot([]) == []
