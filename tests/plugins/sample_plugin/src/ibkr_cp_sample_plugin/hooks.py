"""The sample plugin's hook implementations."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from backtrader_ibkr_cp import Bar, Contract, Timeframe
from backtrader_ibkr_cp.plugins import hookimpl

#: Symbol -> split ratio: prices are divided by it, volume multiplied (a 2:1 split).
SPLITS = {"SMPL": 2.0}
#: The listing preferred when a symbol is ambiguous.
PREFERRED_EXCHANGE = "NYSE"
#: Requests observed, by path.
REQUESTS: collections.Counter[str] = collections.Counter()


@hookimpl
def ibkr_cp_choose_contract(spec: Any, candidates: Sequence[Contract]) -> Contract | None:
    for contract in candidates:
        if contract.exchange == PREFERRED_EXCHANGE:
            return contract
    return None


@hookimpl
def ibkr_cp_transform_bars(symbol: str, timeframe: Timeframe, bars: list[Bar]) -> list[Bar] | None:
    ratio = SPLITS.get(symbol.upper())
    if ratio is None:
        return None
    return [
        dataclasses.replace(
            bar,
            open=bar.open / ratio,
            high=bar.high / ratio,
            low=bar.low / ratio,
            close=bar.close / ratio,
            volume=bar.volume * ratio,
        )
        for bar in bars
    ]


@hookimpl
def ibkr_cp_on_request(event: Any) -> None:
    REQUESTS[event.details["path"]] += 1


@hookimpl
def ibkr_cp_simulator_instruments() -> list[dict[str, Any]]:
    return [
        {"symbol": "SMPL", "conid": 990001, "exchange": "NYSE", "name": "SAMPLE CORP",
         "base_price": 50.0},
        {"symbol": "SMPL", "conid": 990002, "exchange": "NASDAQ", "name": "SAMPLE TECH INC",
         "base_price": 20.0},
    ]  # fmt: skip


@hookimpl
def ibkr_cp_register_feeds(register: Callable[..., None]) -> None:
    register("sample_hook", data=_sample_data, description="Sample feed registered by hook")


def _sample_data(**kwargs: Any) -> dict[str, Any]:
    return {"feed": "sample_hook", **kwargs}
