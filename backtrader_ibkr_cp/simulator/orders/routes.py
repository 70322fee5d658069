"""Templated routes of the order and portfolio endpoints (path parts become ``request.params``).

A trailing ``/`` is stripped before matching (ibind requests ``iserver/account/trades/``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from ..context import SimContext
from ..wire import Request, Response
from . import endpoints, portfolio

__all__ = ["PATTERN_ROUTES", "match"]

Handler = Callable[[Request, SimContext], Response]
_ACCOUNT = r"(?P<account>[^/]+)"

#: (pattern, {method: handler}); the first pattern that matches and knows the method wins.
PATTERN_ROUTES: tuple[tuple[re.Pattern[str], Mapping[str, Handler]], ...] = tuple(
    (re.compile(pattern), methods)
    for pattern, methods in (
        (r"/iserver/account", {"POST": endpoints.switch_account}),
        (r"/iserver/account", {"POST": endpoints.select_account}),
        (r"/iserver/account/orders", {"GET": endpoints.live_orders}),
        (r"/iserver/account/trades", {"GET": endpoints.trades}),
        (r"/iserver/account/order/status/(?P<order_id>[^/]+)", {"GET": endpoints.status}),
        (rf"/iserver/account/{_ACCOUNT}/orders", {"POST": endpoints.place_orders}),
        (
            rf"/iserver/account/{_ACCOUNT}/order/(?P<order_id>[^/]+)",
            {"POST": endpoints.modify_order, "DELETE": endpoints.cancel_order},
        ),
        (r"/iserver/reply/(?P<reply_id>[^/]+)", {"POST": endpoints.reply}),
        (r"/iserver/questions/suppress", {"POST": endpoints.suppress}),
        (r"/iserver/questions/suppress/reset", {"POST": endpoints.suppress_reset}),
        (r"/portfolio/accounts", {"GET": portfolio.portfolio_accounts}),
        (rf"/portfolio/{_ACCOUNT}/summary", {"GET": portfolio.summary}),
        (rf"/portfolio/{_ACCOUNT}/ledger", {"GET": portfolio.ledger}),
        (rf"/portfolio/{_ACCOUNT}/positions/invalidate", {"POST": portfolio.invalidate}),
        (rf"/portfolio/{_ACCOUNT}/positions/(?P<page>[^/]+)", {"GET": portfolio.positions}),
        (rf"/portfolio/{_ACCOUNT}/position/(?P<conid>[^/]+)", {"GET": portfolio.position}),
    )
)


def match(method: str, path: str) -> tuple[Handler | None, dict[str, str], frozenset[str]]:
    """``(handler, path params, methods of the matching patterns)`` for ``path``.

    The handler is None when no pattern matches (methods empty: 404) or none of the matching
    patterns accepts ``method`` (methods non-empty: 405).
    """
    allowed: set[str] = set()
    for pattern, methods in PATTERN_ROUTES:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        handler = methods.get(method)
        if handler is not None:
            return handler, found.groupdict(), frozenset(methods)
        allowed.update(methods)
    return None, {}, frozenset(allowed)
