"""Helpers of the simulator's order and account tests: a trading client over real HTTPS, IBKR's
sample bodies and schemas, and a brute-force oracle of the seeded market.

The oracle walks every second with the market model's own price path (no pruning, no caching),
so it checks the engine's scan, caches and session arithmetic rather than repeating them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import requests

from backtrader_ibkr_cp.simulator import GatewaySimulator, SimLimits
from backtrader_ibkr_cp.simulator.calendar import locate
from backtrader_ibkr_cp.simulator.market import MarketModel
from backtrader_ibkr_cp.simulator.quotes import path_price, top_of_book
from tests.support.instants import TUESDAY_MORNING

#: Tuesday 2024-03-05 10:00:30 New York: regular hours.
TUESDAY = TUESDAY_MORNING
AAPL = 265598
INTC = 270639
ACCOUNT = "DU0000000"
#: Every pacing limit out of the way (tests about pacing use the defaults).
RELAXED = SimLimits(
    total_per_second=1000,
    snapshot_per_second=1000,
    live_orders_per_5s=1000,
    trades_per_5s=1000,
    portfolio_accounts_per_5s=1000,
)
FIXTURES = Path(__file__).parent / "fixtures"
SCHEMAS = json.loads((FIXTURES / "ibkr_openapi_order_schemas.json").read_text())


def sample(name: str) -> Any:
    """An IBKR sample body from ``fixtures/orders`` (``name`` without ``.json``)."""
    return json.loads((FIXTURES / "orders" / f"{name}.json").read_text())


def validate(body: Any, schema: str) -> None:
    """Validate ``body`` against IBKR's component schema ``schema``."""
    jsonschema.validate(body, {"$defs": SCHEMAS["$defs"], "$ref": f"#/$defs/{schema}"})


def _kind(value: Any) -> str:
    return type(value).__name__


def assert_like(
    body: dict[str, Any], example: dict[str, Any], differ: dict[str, str] | None = None
) -> None:
    """``body`` has every key of ``example`` with the same JSON type, except the keys in
    ``differ`` (key -> why), which may be absent or typed otherwise."""
    differ = differ or {}
    problems = [
        f"{key}: {_kind(body.get(key, ...))} {body.get(key, 'missing')!r} "
        f"vs example {_kind(value)} {value!r}"
        for key, value in example.items()
        if key not in differ
        and (key not in body or (_kind(body[key]) != _kind(value) and value is not None))
    ]
    assert not problems, "\n".join(problems)


def ticket(
    conid: int = AAPL,
    side: str = "BUY",
    quantity: int = 100,
    order_type: str = "MKT",
    tif: str = "DAY",
    **extra: Any,
) -> dict[str, Any]:
    """An order ticket as IBKR's docs write it."""
    return {"conid": conid, "side": side, "quantity": quantity, "orderType": order_type,
            "tif": tif, **extra}  # fmt: skip


class Trader:
    """A client of one simulator (paths relative to ``/v1/api``), accounts queried."""

    def __init__(self, sim: GatewaySimulator, query_accounts: bool = True) -> None:
        self.sim = sim
        self.http = requests.Session()
        self.account = ACCOUNT
        if query_accounts:
            assert self.get("/iserver/accounts").ok

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, self.sim.api_url + path, verify=self.sim.cert_path,
                                 **kwargs)  # fmt: skip

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    # -- orders ------------------------------------------------------------------------------

    def submit(self, *tickets: dict[str, Any]) -> requests.Response:
        return self.post(f"/iserver/account/{self.account}/orders", json={"orders": list(tickets)})

    def reply(self, reply_id: str, confirmed: bool = True) -> requests.Response:
        return self.post(f"/iserver/reply/{reply_id}", json={"confirmed": confirmed})

    def confirm_all(self, response: requests.Response) -> tuple[list[Any], list[str]]:
        """Answer every question with yes; ``(final body, message ids asked)``."""
        asked: list[str] = []
        body = response.json()
        while isinstance(body, list) and body and "id" in body[0]:
            asked += body[0]["messageIds"]
            body = self.reply(body[0]["id"]).json()
        return body, asked

    def place(self, *tickets: dict[str, Any]) -> list[dict[str, Any]]:
        """Place and confirm; the answer's elements (AssertionError on a refusal)."""
        body, _ = self.confirm_all(self.submit(*tickets))
        assert isinstance(body, list), body
        return body

    def place_one(self, **fields: Any) -> int:
        """Place one ticket (see :func:`ticket`) and return its order id."""
        return int(self.place(ticket(**fields))[0]["order_id"])

    def modify(self, order_id: int, **fields: Any) -> requests.Response:
        path = f"/iserver/account/{self.account}/order/{order_id}"
        return self.post(path, json=fields)

    def cancel(self, order_id: int) -> requests.Response:
        return self.delete(f"/iserver/account/{self.account}/order/{order_id}")

    def status(self, order_id: int) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/iserver/account/order/status/{order_id}").json()
        return body

    def live_orders(self, **params: Any) -> dict[str, Any]:
        """The book (priming the endpoint first when the session has not yet)."""
        body: dict[str, Any] = self.get("/iserver/account/orders", params=params).json()
        if not body["snapshot"] and not params.get("force"):
            body = self.get("/iserver/account/orders", params=params).json()
        return body

    def quote(self, conid: int = AAPL) -> tuple[float, float, int, int]:
        """``(bid, ask, bid size, ask size)`` from the snapshot endpoint."""
        path = "/iserver/marketdata/snapshot"
        params = {"conids": str(conid), "fields": "84,86,85,88"}
        entry = self.get(path, params=params).json()[0]
        if "84" not in entry:
            entry = self.get(path, params=params).json()[0]
        sizes = (int(entry["88"].replace(",", "")), int(entry["85"].replace(",", "")))
        return float(entry["84"]), float(entry["86"]), *sizes

    def close(self) -> None:
        self.http.close()


# -- the oracle ------------------------------------------------------------------------------


class Oracle:
    """The seeded market second by second (cents), independent of the order engine."""

    def __init__(self, sim: GatewaySimulator) -> None:
        self.market = MarketModel(sim.seed)
        self.sim = sim

    def last(self, conid: int, instant: datetime) -> int:
        """The last price at ``instant`` (a trading second, 04:00-20:00 New York)."""
        moment = locate(instant)
        bars = self.market.day(self.sim.instruments[conid], moment.day)
        m = moment.minute
        return path_price(bars.open[m], bars.high[m], bars.low[m], bars.close[m], moment.second)

    def sizes(self, conid: int, instant: datetime) -> tuple[int, int]:
        """``(bid size, ask size)`` shown at ``instant``."""
        moment = locate(instant)
        book = top_of_book(self.sim.seed, conid, moment.minute, int(moment.second))
        return book.bid_size, book.ask_size

    def seconds(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Whole seconds in ``(start, end]`` that fall in regular hours."""
        instant = start.replace(microsecond=0) + timedelta(seconds=1)
        while instant <= end:
            moment = locate(instant)
            if moment.trading and 330 <= moment.minute < 720:
                yield instant
            instant += timedelta(seconds=1)

    def find(
        self, conid: int, start: datetime, end: datetime, hit: Callable[[int], bool]
    ) -> datetime | None:
        """The first regular-hours second in ``(start, end]`` whose last price satisfies
        ``hit``, or None."""
        for instant in self.seconds(start, end):
            if hit(self.last(conid, instant)):
                return instant
        return None

    def first(
        self, conid: int, start: datetime, end: datetime, hit: Callable[[int], bool]
    ) -> datetime:
        """As :meth:`find`; AssertionError when there is none (the test needs another level)."""
        found = self.find(conid, start, end, hit)
        if found is None:
            raise AssertionError(f"no second in ({start}, {end}] satisfies the condition")
        return found
