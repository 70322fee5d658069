"""Feeds by name: ``available_feeds()``, ``make_store(name, ...)``, ``make_data(name, ...)``.

A feed is found two ways:

1. a plugin's ``ibkr_cp_register_feeds(register)`` hook (the built-in plugin registers
   ``ibkr_cp``);
2. the ``backtrader.feeds`` entry-point group, which any backtrader extension may use without
   knowing this package. An entry point there may load to a :class:`FeedInfo`; an object with
   a ``feed_info`` attribute (a FeedInfo or a function returning one); an object with ``Store``
   and/or ``Data`` attributes (classes or factories); a class with a ``getdata`` method (a
   Store); or any other callable (a data factory).

When two providers use the same name, the first wins (hooks before entry points, plugins in
registration order, the built-in first) and a :class:`PluginLoadWarning` names both.
Third-party entry points obey the same environment settings as plugins (see :mod:`.manager`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Any

import pluggy

from ..errors import ConfigError
from .feedinfo import FeedInfo
from .manager import (
    OWN_DISTRIBUTION,
    PluginLoadWarning,
    PluginSettings,
    distribution_label,
    distribution_name,
    entry_points,
    get_plugin_manager,
)

__all__ = ["FEEDS_GROUP", "available_feeds", "make_data", "make_store"]

#: The entry-point group backtrader extensions register feeds in.
FEEDS_GROUP = "backtrader.feeds"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


def _warn(message: str) -> None:
    warnings.warn(message, PluginLoadWarning, stacklevel=3)


def _hook_feeds(pm: pluggy.PluginManager) -> dict[str, FeedInfo]:
    feeds: dict[str, FeedInfo] = {}
    for impl in pm.hook.ibkr_cp_register_feeds.get_hookimpls():
        if impl.hookwrapper or impl.wrapper:
            continue
        plugin = impl.plugin
        provider = str(getattr(plugin, "__name__", impl.plugin_name))
        dist = _plugin_distribution(pm, plugin)

        def register(
            name: str,
            store: Callable[..., Any] | None = None,
            data: Callable[..., Any] | None = None,
            description: str = "",
            *,
            _provider: str = provider,
            _plugin: str = impl.plugin_name,
            _dist: str | None = dist,
        ) -> None:
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(
                    f"plugin {_plugin!r} registered a feed named {name!r}; a feed name starts "
                    "with a letter and holds letters, digits, '_', '.', '-'"
                )
            info = FeedInfo(name, store, data, description, "hook", _provider, _dist)
            if name in feeds:
                _warn(
                    f"feed {name!r} is registered by both {feeds[name].provider} and "
                    f"{_provider} (plugin {_plugin!r}); keeping the first"
                )
                return
            feeds[name] = info

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except Exception as exc:
            _warn(
                f"plugin {impl.plugin_name!r} ({dist or provider}) failed in "
                f"ibkr_cp_register_feeds and its feeds are skipped: {type(exc).__name__}: {exc}"
            )
    return feeds


def _plugin_distribution(pm: pluggy.PluginManager, plugin: object) -> str | None:
    for registered, dist in pm.list_plugin_distinfo():
        if registered is plugin:
            return f"{dist.project_name} {dist.version}"
    return None


def _feed_from_object(name: str, obj: Any) -> FeedInfo | None:
    if isinstance(obj, FeedInfo):
        return obj
    info = getattr(obj, "feed_info", None)
    if isinstance(info, FeedInfo):
        return info
    if callable(info):
        made = info()
        return made if isinstance(made, FeedInfo) else None
    store, data = getattr(obj, "Store", None), getattr(obj, "Data", None)
    if store is not None or data is not None:
        return FeedInfo(name, store=store, data=data, description=_first_line(obj))
    if isinstance(obj, type) and callable(getattr(obj, "getdata", None)):
        return FeedInfo(name, store=obj, description=_first_line(obj))
    if callable(obj):
        return FeedInfo(name, data=obj, description=_first_line(obj))
    return None


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _entry_point_feeds(feeds: dict[str, FeedInfo], settings: PluginSettings) -> None:
    for ep in entry_points(FEEDS_GROUP):
        dist = ep.dist
        dist_name = distribution_name(dist)
        own = dist_name is not None and _normal(dist_name) == OWN_DISTRIBUTION
        if not own and not settings.allows(ep.name, dist_name):
            continue
        label = distribution_label(dist)
        existing = feeds.get(ep.name)
        if existing is not None:
            if existing.provider == ep.module:
                if existing.distribution is None:
                    feeds[ep.name] = _with(existing, distribution=label)
            else:
                _warn(
                    f"feed {ep.name!r} from {label} ({ep.value}) has the same name as "
                    f"{existing.provider}'s; keeping {existing.provider}"
                )
            continue
        try:
            obj = ep.load()
            info = _feed_from_object(ep.name, obj)
        except Exception as exc:
            _warn(
                f"backtrader.feeds entry point {ep.name!r} ({ep.value}) from {label} failed to "
                f"load and is skipped: {type(exc).__name__}: {exc}. Upgrade or uninstall that "
                "distribution"
            )
            continue
        if info is None:
            _warn(
                f"backtrader.feeds entry point {ep.name!r} ({ep.value}) from {label} is not a "
                "feed (no FeedInfo, feed_info, Store/Data, Store class or factory); skipped"
            )
            continue
        feeds[ep.name] = _with(
            info, name=ep.name, source="entry-point", provider=ep.module, distribution=label
        )


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _with(info: FeedInfo, **changes: Any) -> FeedInfo:
    from dataclasses import replace

    return replace(info, **changes)


def available_feeds(
    pm: pluggy.PluginManager | None = None, settings: PluginSettings | None = None
) -> dict[str, FeedInfo]:
    """Every feed by name: those registered through ``ibkr_cp_register_feeds`` and those in
    the ``backtrader.feeds`` entry-point group (this package's ``ibkr_cp`` included). Loads the
    entry points (imports their modules; a failing one is skipped with a warning)."""
    pm = pm if pm is not None else get_plugin_manager()
    settings = settings if settings is not None else PluginSettings.from_env()
    feeds = _hook_feeds(pm)
    _entry_point_feeds(feeds, settings)
    return dict(sorted(feeds.items()))


def _lookup(name: str, pm: pluggy.PluginManager | None) -> FeedInfo:
    feeds = available_feeds(pm)
    try:
        return feeds[name]
    except KeyError:
        raise ConfigError(
            f"no feed named {name!r}; available: {', '.join(feeds) or 'none'} (install the "
            "plugin that provides it, or check IBKR_CP_PLUGINS)"
        ) from None


def make_store(name: str, *, pm: pluggy.PluginManager | None = None, **kwargs: Any) -> Any:
    """Build the Store of feed ``name`` with ``kwargs`` (ConfigError for an unknown name)."""
    return _lookup(name, pm).make_store(**kwargs)


def make_data(name: str, *, pm: pluggy.PluginManager | None = None, **kwargs: Any) -> Any:
    """Build a data feed of feed ``name`` with ``kwargs`` (ConfigError for an unknown name)."""
    return _lookup(name, pm).make_data(**kwargs)
