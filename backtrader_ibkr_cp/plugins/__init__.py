"""Plugins for backtrader_ibkr_cp (pluggy), and feeds by name.

Write a plugin: implement hooks from :mod:`.hookspecs` marked with :data:`hookimpl`, and
declare the module in your ``pyproject.toml``::

    [project.entry-points."backtrader_ibkr_cp"]
    my_plugin = "my_package.ibkr_hooks"

Use feeds by name::

    from backtrader_ibkr_cp.plugins import available_feeds, make_data
    available_feeds()                    # {"ibkr_cp": FeedInfo(...), ...}
    data = make_data("ibkr_cp", gateway_url="https://localhost:5000", dataname="AAPL", ...)
"""

from __future__ import annotations

from .bridges import (
    apply_simulator_instruments,
    plugin_choose_contract,
    plugin_request_listener,
    plugin_simulator_instruments,
    plugin_transform_bars,
)
from .feedinfo import FeedInfo
from .manager import (
    ENV_ALLOW,
    ENV_DISABLE_AUTOLOAD,
    PluginLoadWarning,
    PluginSettings,
    build_plugin_manager,
    get_plugin_manager,
    reset_plugin_manager,
)
from .markers import PROJECT, hookimpl, hookspec
from .registry import FEEDS_GROUP, available_feeds, make_data, make_store

__all__ = [
    "ENV_ALLOW",
    "ENV_DISABLE_AUTOLOAD",
    "FEEDS_GROUP",
    "PROJECT",
    "FeedInfo",
    "PluginLoadWarning",
    "PluginSettings",
    "apply_simulator_instruments",
    "available_feeds",
    "build_plugin_manager",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "make_data",
    "make_store",
    "plugin_choose_contract",
    "plugin_request_listener",
    "plugin_simulator_instruments",
    "plugin_transform_bars",
    "reset_plugin_manager",
]
