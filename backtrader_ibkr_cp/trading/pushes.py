"""Order and trade updates pushed over the gateway's WebSocket, as the worker's commands.

IBKR's ``sor`` topic sends an order's full object the first time it reports it, then only
``acct``, ``orderId`` and the fields that changed; ``str`` sends executions shaped as
``/iserver/account/trades`` shows them. :class:`PushReader` merges each order's updates into
its last known object and reads both with the REST parsers (:mod:`..models.orders`), so a
pushed update means exactly what the same update polled would. Delivery is at least once and
may start mid-way (an order first seen as a delta): such an order is skipped until a full
object or the next poll tells about it; the book applies every execution once, whatever
path brought it. Thread-safe (the socket's reader thread calls it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..errors import DataIntegrityError
from ..models.orders import Execution, LiveOrder, parse_executions, parse_live_order
from .worker import Pushed

__all__ = ["PushReader"]

log = logging.getLogger(__name__)

SOR_ENDPOINT = "/ws (sor)"
STR_ENDPOINT = "/ws (str)"
#: Orders whose merged state is kept (the oldest are forgotten beyond this).
MAX_ORDERS = 10_000


class PushReader:
    """See the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[Any, dict[str, Any]] = {}

    def orders(self, items: tuple[Mapping[str, Any], ...]) -> Pushed:
        """One ``sor`` message as the orders it reports (partial first messages skipped)."""
        parsed: list[LiveOrder] = []
        for item in items:
            key = item.get("orderId")
            if key is None:
                continue
            with self._lock:
                merged = {**self._orders.pop(key, {}), **item}
                self._orders[key] = merged
                while len(self._orders) > MAX_ORDERS:
                    del self._orders[next(iter(self._orders))]
            try:
                parsed.append(parse_live_order(merged, endpoint=SOR_ENDPOINT))
            except DataIntegrityError as exc:
                log.debug("pushed order %s not readable yet: %s", key, exc)
        return Pushed(orders=tuple(parsed))

    def trades(self, items: tuple[Mapping[str, Any], ...]) -> Pushed:
        """One ``str`` message as executions (unreadable ones skipped: polling has them)."""
        executions: list[Execution] = []
        for item in items:
            try:
                executions.extend(parse_executions([item], endpoint=STR_ENDPOINT))
            except DataIntegrityError as exc:
                log.warning("a pushed execution was not readable (%s); polling will read it", exc)
        return Pushed(executions=tuple(executions))
