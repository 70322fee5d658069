"""Small adapters that plug the hooks into the package's parts.

Each takes an optional plugin manager (default: :func:`~.manager.get_plugin_manager`):

- :func:`plugin_choose_contract` -> the ``choose`` callable of a ``ContractResolver``;
- :func:`plugin_transform_bars` -> bars after every plugin's ``ibkr_cp_transform_bars``;
- :func:`plugin_request_listener` -> a listener for ``GatewayClient.add_listener``;
- :func:`plugin_simulator_instruments` / :func:`apply_simulator_instruments` -> instruments for
  a ``GatewaySimulator``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pluggy

from ..errors import ConfigError, DataIntegrityError, MarketError
from ..gateway import ClientHooks
from ..models import Bar, Contract, Timeframe
from .manager import get_plugin_manager

__all__ = [
    "ContractChooser",
    "apply_simulator_instruments",
    "client_hooks",
    "plugin_choose_contract",
    "plugin_request_listener",
    "plugin_simulator_instruments",
    "plugin_transform_bars",
]

log = logging.getLogger(__name__)

#: ``choose(spec, candidates) -> Contract | None`` as the ContractResolver takes it.
ContractChooser = Callable[[Any, Sequence[Contract]], "Contract | None"]


def _pm(pm: pluggy.PluginManager | None) -> pluggy.PluginManager:
    return pm if pm is not None else get_plugin_manager()


def _impls(pm: pluggy.PluginManager, hook_name: str) -> list[Any]:
    """Plain (non-wrapper) implementations in pluggy's call order (LIFO, tryfirst first)."""
    impls = getattr(pm.hook, hook_name).get_hookimpls()
    return [i for i in reversed(impls) if not (i.hookwrapper or i.wrapper)]


def plugin_choose_contract(pm: pluggy.PluginManager | None = None) -> ContractChooser:
    """A ``choose(spec, candidates)`` for ``ContractResolver``: the first plugin answer
    (``ibkr_cp_choose_contract``), None when no plugin decides.

    Raises ConfigError when a plugin answers something that is not one of ``candidates``.
    """
    manager = _pm(pm)

    def choose(spec: Any, candidates: Sequence[Contract]) -> Contract | None:
        listed = list(candidates)
        for impl in _impls(manager, "ibkr_cp_choose_contract"):
            kwargs = {"spec": spec, "candidates": list(listed)}
            result = impl.function(**{a: kwargs[a] for a in impl.argnames})
            if result is None:
                continue
            for candidate in listed:
                if candidate is result or (
                    isinstance(result, Contract) and candidate.contract_id == result.contract_id
                ):
                    return candidate
            raise ConfigError(
                f"plugin {impl.plugin_name!r} chose {result!r} for {spec}, which is not one of "
                f"the candidates ({', '.join(str(c.contract_id) for c in listed)}); fix the "
                "plugin or give an unambiguous spec like 'AAPL-STK-NASDAQ-USD'"
            )
        return None

    return choose


def plugin_transform_bars(
    symbol: str,
    timeframe: Timeframe,
    bars: list[Bar],
    pm: pluggy.PluginManager | None = None,
) -> list[Bar]:
    """``bars`` after every ``ibkr_cp_transform_bars`` plugin, chained in call order.

    A plugin returning None leaves the bars as they are. A plugin's MarketError propagates;
    any other exception, or an answer that is not a list of Bar in strictly increasing time
    order, raises DataIntegrityError naming the plugin.
    """
    current = list(bars)
    for impl in _impls(_pm(pm), "ibkr_cp_transform_bars"):
        kwargs = {"symbol": symbol, "timeframe": timeframe, "bars": list(current)}
        try:
            result = impl.function(**{a: kwargs[a] for a in impl.argnames})
        except MarketError:
            raise
        except Exception as exc:
            raise DataIntegrityError(
                f"bar plugin {impl.plugin_name!r} failed on {symbol} {timeframe.bar} bars: "
                f"{type(exc).__name__}: {exc}; fix or disable the plugin (IBKR_CP_PLUGINS)"
            ) from exc
        if result is None:
            continue
        _check_bars(result, impl.plugin_name, symbol)
        current = list(result)
    return current


def _check_bars(result: Any, plugin: str, symbol: str) -> None:
    if not isinstance(result, list) or not all(isinstance(b, Bar) for b in result):
        raise DataIntegrityError(
            f"bar plugin {plugin!r} returned {type(result).__name__} for {symbol}; "
            "ibkr_cp_transform_bars must return a list of Bar or None"
        )
    for before, after in itertools.pairwise(result):
        if after.timestamp <= before.timestamp:
            raise DataIntegrityError(
                f"bar plugin {plugin!r} returned {symbol} bars out of order ("
                f"{after.timestamp.isoformat()} after {before.timestamp.isoformat()}); bars "
                "must keep strictly increasing timestamps"
            )


def plugin_request_listener(
    pm: pluggy.PluginManager | None = None,
) -> Callable[[Any], None]:
    """A ``ClientEvent`` listener that calls ``ibkr_cp_on_request(event)`` for each
    ``kind == "request"`` event. A failing plugin is logged (once per plugin) and ignored."""
    manager = _pm(pm)
    failed: set[str] = set()

    def listener(event: Any) -> None:
        if getattr(event, "kind", None) != "request":
            return
        for impl in _impls(manager, "ibkr_cp_on_request"):
            try:
                impl.function(**{a: event for a in impl.argnames})
            except Exception:
                if impl.plugin_name not in failed:
                    failed.add(impl.plugin_name)
                    log.warning(
                        "plugin %r failed in ibkr_cp_on_request (further failures not logged)",
                        impl.plugin_name,
                        exc_info=True,
                    )

    return listener


_INSTRUMENT_KEYS = frozenset(
    {"symbol", "conid", "exchange", "name", "base_price", "currency", "sec_type", "us"}
)


def plugin_simulator_instruments(pm: pluggy.PluginManager | None = None) -> list[dict[str, Any]]:
    """Every plugin's ``ibkr_cp_simulator_instruments()``, concatenated and validated.

    Raises ConfigError naming the plugin for an entry without a ``symbol`` (str) and a
    positive int ``conid``, or with keys ``add_instrument`` does not take.
    """
    out: list[dict[str, Any]] = []
    for impl in _impls(_pm(pm), "ibkr_cp_simulator_instruments"):
        result = impl.function()
        if result is None:
            continue
        if not isinstance(result, (list, tuple)):
            raise ConfigError(
                f"plugin {impl.plugin_name!r}: ibkr_cp_simulator_instruments must return a "
                f"list of dicts, got {type(result).__name__}"
            )
        for entry in result:
            out.append(_check_instrument(entry, impl.plugin_name))
    return out


def _check_instrument(entry: Any, plugin: str) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(
            f"plugin {plugin!r}: simulator instrument {entry!r} is not a dict of "
            "add_instrument keyword arguments"
        )
    symbol, conid = entry.get("symbol"), entry.get("conid")
    if not isinstance(symbol, str) or not symbol.strip():
        raise ConfigError(f"plugin {plugin!r}: simulator instrument {entry!r} needs a 'symbol'")
    if isinstance(conid, bool) or not isinstance(conid, int) or conid <= 0:
        raise ConfigError(
            f"plugin {plugin!r}: simulator instrument {symbol!r} needs an int 'conid' > 0, "
            f"got {conid!r}"
        )
    unknown = set(entry) - _INSTRUMENT_KEYS
    if unknown:
        raise ConfigError(
            f"plugin {plugin!r}: simulator instrument {symbol!r} has unknown keys "
            f"{sorted(unknown)}; use {sorted(_INSTRUMENT_KEYS)}"
        )
    return dict(entry)


def apply_simulator_instruments(sim: Any, pm: pluggy.PluginManager | None = None) -> int:
    """Add every plugin instrument to ``sim`` (``sim.add_instrument(**entry)``); returns how
    many were added."""
    entries = plugin_simulator_instruments(pm)
    for entry in entries:
        sim.add_instrument(**entry)
    return len(entries)


def client_hooks(pm: pluggy.PluginManager | None = None) -> ClientHooks:
    """The installed plugins' hooks for a ``GatewayClient``: contract choice, bar
    transforms and request events."""
    manager = _pm(pm)

    def transform(symbol: str, timeframe: Timeframe, bars: list[Bar]) -> list[Bar]:
        return plugin_transform_bars(symbol, timeframe, bars, manager)

    return ClientHooks(
        choose_contract=plugin_choose_contract(manager),
        transform_bars=transform,
        on_request=plugin_request_listener(manager),
    )
