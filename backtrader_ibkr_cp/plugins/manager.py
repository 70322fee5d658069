"""The one plugin manager: hookspecs, the built-in plugin, then installed plugins.

:func:`get_plugin_manager` builds it once per process (thread-safe) with the settings from the
environment:

- ``IBKR_CP_DISABLE_PLUGIN_AUTOLOAD=1`` (or ``true``/``yes``/``on``): load no installed plugin,
  only the built-in one (the ``backtrader.feeds`` group is then limited to this package too);
- ``IBKR_CP_PLUGINS=name1,name2``: load only these installed plugins (entry-point names or
  distribution names; empty: none).

An installed plugin that fails to import or to register (bad hook name or signature) is
skipped with a :class:`PluginLoadWarning` naming it and its distribution; it never crashes
the host. :func:`reset_plugin_manager` forgets the cached manager (tests, or after installing
a plugin at run time).
"""

from __future__ import annotations

import importlib.metadata as metadata
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import pluggy

from ..errors import ConfigError
from . import builtin, hookspecs
from .markers import PROJECT

__all__ = [
    "ENV_ALLOW",
    "ENV_DISABLE_AUTOLOAD",
    "PluginLoadWarning",
    "PluginSettings",
    "build_plugin_manager",
    "distribution_label",
    "get_plugin_manager",
    "reset_plugin_manager",
]

log = logging.getLogger(__name__)

#: Comma-separated allow-list of installed plugins (entry-point or distribution names).
ENV_ALLOW = "IBKR_CP_PLUGINS"
#: Set to 1 to load no installed plugin.
ENV_DISABLE_AUTOLOAD = "IBKR_CP_DISABLE_PLUGIN_AUTOLOAD"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
#: This package's own distribution name, normalised.
OWN_DISTRIBUTION = "backtrader-ibkr-cp"


class PluginLoadWarning(UserWarning):
    """An installed plugin could not be loaded and was skipped."""


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class PluginSettings:
    """Which installed plugins to load. ``allow`` None means all of them."""

    autoload: bool = True
    allow: frozenset[str] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PluginSettings:
        """Read :data:`ENV_DISABLE_AUTOLOAD` and :data:`ENV_ALLOW` (ConfigError if malformed)."""
        env = os.environ if environ is None else environ
        flag = env.get(ENV_DISABLE_AUTOLOAD, "").strip().lower()
        if flag not in _TRUE | _FALSE:
            raise ConfigError(
                f"{ENV_DISABLE_AUTOLOAD}={env.get(ENV_DISABLE_AUTOLOAD)!r} is not valid; use 1 "
                "to disable loading installed plugins, or 0 / unset to load them"
            )
        allow = None
        if ENV_ALLOW in env:
            allow = frozenset(_normalize(n.strip()) for n in env[ENV_ALLOW].split(",") if n.strip())
        return cls(autoload=flag not in _TRUE, allow=allow)

    def allows(self, *names: str | None) -> bool:
        """True when an installed plugin known by any of ``names`` may be loaded."""
        if not self.autoload:
            return False
        if self.allow is None:
            return True
        return any(n is not None and _normalize(n) in self.allow for n in names)


def distribution_label(dist: metadata.Distribution | None) -> str:
    """``"name version"`` of a distribution, or ``"an unknown distribution"``."""
    if dist is None:
        return "an unknown distribution"
    name = dist.metadata["Name"] if dist.metadata else None
    return f"{name or '?'} {dist.version}"


def distribution_name(dist: metadata.Distribution | None) -> str | None:
    if dist is None or not dist.metadata:
        return None
    name = dist.metadata["Name"]
    return str(name) if name else None


def entry_points(group: str) -> Iterator[metadata.EntryPoint]:
    """The entry points of ``group`` across installed distributions, each once."""
    seen: set[tuple[str, str]] = set()
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != group:
                continue
            key = (ep.name, ep.value)
            if key in seen:
                continue
            seen.add(key)
            yield ep


def _warn(message: str) -> None:
    log.warning("%s", message)
    warnings.warn(message, PluginLoadWarning, stacklevel=3)


def _load_installed(pm: pluggy.PluginManager, settings: PluginSettings) -> None:
    for ep in entry_points(PROJECT):
        dist = ep.dist
        if not settings.allows(ep.name, distribution_name(dist)):
            log.debug("plugin %r not in %s; skipped", ep.name, ENV_ALLOW)
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            pm.load_setuptools_entrypoints(PROJECT, name=ep.name)
        except Exception as exc:
            _warn(
                f"backtrader_ibkr_cp plugin {ep.name!r} ({ep.value}) from "
                f"{distribution_label(dist)} failed to load and is skipped: "
                f"{type(exc).__name__}: {exc}. Upgrade or uninstall that distribution, or "
                f"leave it out of {ENV_ALLOW}"
            )


def _check_pending(pm: pluggy.PluginManager) -> None:
    """Unregister (with a warning) each plugin that implements a hook that does not exist."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            plugin = exc.plugin
            name = pm.get_name(plugin) or repr(plugin)
            if plugin is builtin:
                raise
            pm.unregister(plugin)
            _warn(
                f"backtrader_ibkr_cp plugin {name!r} is skipped: {exc}. Hook names must be "
                f"one of: {', '.join(_hook_names())}"
            )


def _hook_names() -> Iterable[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("ibkr_cp_"))


def build_plugin_manager(settings: PluginSettings | None = None) -> pluggy.PluginManager:
    """A new manager: hookspecs, the built-in plugin, then the installed plugins ``settings``
    allows (default: from the environment). Not cached; see :func:`get_plugin_manager`."""
    settings = settings if settings is not None else PluginSettings.from_env()
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, name="builtin")
    if settings.autoload:
        _load_installed(pm, settings)
    _check_pending(pm)
    return pm


_lock = threading.Lock()
_cached: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first use, then cached)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = build_plugin_manager()
        return _cached


def reset_plugin_manager() -> None:
    """Forget the cached manager; the next :func:`get_plugin_manager` builds a new one."""
    global _cached
    with _lock:
        _cached = None
