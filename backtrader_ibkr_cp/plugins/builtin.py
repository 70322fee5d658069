"""The built-in plugin: registers the ``ibkr_cp`` feed (IBKRCPStore / IBKRCPData).

Registered with the plugin manager like any plugin, and the target of this package's
``backtrader.feeds`` entry point (``ibkr_cp = "backtrader_ibkr_cp.plugins.builtin"``), which is
read through :func:`feed_info`. Importing it does not import backtrader.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from .feedinfo import FeedInfo
from .markers import hookimpl

__all__ = ["FEED_NAME", "feed_info", "ibkr_cp_register_feeds", "make_data", "make_store"]

#: The name this package's feed is registered under.
FEED_NAME = "ibkr_cp"
_DESCRIPTION = "Interactive Brokers Client Portal Gateway (IBKRCPStore / IBKRCPData)"


#: Where the feed's classes live, named (not imported): the plugin layer sits beside the
#: layers and must not import the backtrader layer it registers.
STORE_CLASS = "backtrader_ibkr_cp.bt:IBKRCPStore"
DATA_CLASS = "backtrader_ibkr_cp.bt:IBKRCPData"


def _named(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def make_store(**kwargs: Any) -> Any:
    """``IBKRCPStore(**kwargs)`` (imports backtrader)."""
    return _named(STORE_CLASS)(**kwargs)


def make_data(*, store: Any = None, **kwargs: Any) -> Any:
    """An ``IBKRCPData`` feed: ``store.getdata(**kwargs)`` for a given ``store``, else
    ``IBKRCPData(**kwargs)``, which takes the store's parameters (``gateway_url``, ``verify``,
    ``cassette``, ...) next to its own (``dataname``, ``timeframe``, ``fromdate``, ...)."""
    if store is not None:
        return store.getdata(**kwargs)
    return _named(DATA_CLASS)(**kwargs)


def feed_info() -> FeedInfo:
    """What the ``backtrader.feeds`` entry point ``ibkr_cp`` provides."""
    return FeedInfo(FEED_NAME, store=make_store, data=make_data, description=_DESCRIPTION)


@hookimpl
def ibkr_cp_register_feeds(register: Callable[..., None]) -> None:
    register(FEED_NAME, store=make_store, data=make_data, description=_DESCRIPTION)
