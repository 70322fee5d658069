"""The hooks a backtrader_ibkr_cp plugin may implement. Each docstring is the contract.

Every hook name starts with ``ibkr_cp_``. A plugin implements any subset, marking each function
with :data:`~backtrader_ibkr_cp.plugins.hookimpl`, and declares itself in its distribution's
``pyproject.toml``::

    [project.entry-points."backtrader_ibkr_cp"]
    my_plugin = "my_package.ibkr_hooks"

An implementation may take fewer arguments than the spec (pluggy passes the ones it names).
Plugins are called in LIFO registration order (the last registered first) unless they use
``tryfirst``/``trylast``. Exceptions a plugin raises propagate to the caller, except in
:func:`ibkr_cp_on_request`, whose failures are logged and ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..models import Bar, Contract, Timeframe
from .markers import hookspec

__all__ = [
    "ibkr_cp_choose_contract",
    "ibkr_cp_on_request",
    "ibkr_cp_register_feeds",
    "ibkr_cp_simulator_instruments",
    "ibkr_cp_transform_bars",
]


@hookspec
def ibkr_cp_register_feeds(register: Callable[..., None]) -> None:
    """Register named feeds: call ``register(name, store=..., data=..., description=...)``.

    ``name`` is a short identifier (letters, digits, ``_``, ``-``), unique across plugins;
    ``store`` a callable returning a backtrader Store (called with the user's keyword
    arguments), ``data`` a callable returning a backtrader data feed; at least one of them.
    They are listed by :func:`~backtrader_ibkr_cp.plugins.available_feeds` and built by
    :func:`~backtrader_ibkr_cp.plugins.make_store` / :func:`~backtrader_ibkr_cp.plugins.make_data`.
    Called once per :func:`available_feeds` call; must not do I/O or import heavy modules
    (import inside the factories instead). Returns nothing.
    """


@hookspec(firstresult=True)
def ibkr_cp_choose_contract(spec: Any, candidates: Sequence[Contract]) -> Contract | None:
    """Choose among several contracts that match a symbol (an ambiguous symbol).

    ``spec`` is the :class:`~backtrader_ibkr_cp.contracts.resolver.ContractSpec` the user asked
    for (``spec.symbol``, ``spec.sec_type``, ``spec.exchange``, ``spec.currency``; the fields the
    user left out are empty), ``candidates`` the gateway's matching contracts (two or more).
    Return one of ``candidates`` (the same object or one with the same ``contract_id``), or
    None to let the next plugin decide. The first non-None answer wins; when every plugin
    returns None, the resolver raises ``AmbiguousContract`` listing the candidates. Returning a
    contract that is not among the candidates is an error (ConfigError).
    """


@hookspec
def ibkr_cp_transform_bars(symbol: str, timeframe: Timeframe, bars: list[Bar]) -> list[Bar] | None:
    """Validate or transform bars before a feed delivers them.

    ``symbol`` is the feed's symbol as the user gave it (``"AAPL"``), ``timeframe`` the bars'
    :class:`~backtrader_ibkr_cp.Timeframe`, ``bars`` completed, validated bars sorted by start
    time (UTC, one per timestamp; volume in shares). Return None to leave them unchanged, or a
    new list of :class:`~backtrader_ibkr_cp.Bar` still sorted by strictly increasing timestamp
    (bars may be dropped or adjusted; do not mutate the input list). Plugins are chained: each
    receives the previous one's output. Raise ``DataIntegrityError`` to reject the data (the
    feed stops with that error).
    """


@hookspec
def ibkr_cp_on_request(event: Any) -> None:
    """Observe one gateway request, e.g. for metrics. Called after every HTTP request a client
    makes (retries included), on the thread that made it.

    ``event`` is a :class:`~backtrader_ibkr_cp.client.transport.ClientEvent` with ``kind ==
    "request"`` and ``details``: ``method`` (``"GET"``), ``path`` (``"/iserver/accounts"``, no
    query string), ``status`` (HTTP status, None when no answer came), ``seconds`` (float, wall
    time). It never carries a secret. Must be fast and must not make gateway requests;
    exceptions are logged and ignored. Returns nothing.
    """


@hookspec
def ibkr_cp_simulator_instruments() -> list[dict[str, Any]] | None:
    """Instruments to add to a :class:`~backtrader_ibkr_cp.simulator.GatewaySimulator`.

    Return a list of dicts (or None for none), each the keyword arguments of
    ``sim.add_instrument``: ``symbol`` (str, required), ``conid`` (int > 0, required, unique),
    and optionally ``exchange`` (primary listing, e.g. ``"NYSE"``), ``name`` (company name),
    ``base_price`` (float > 0, the starting price), ``currency`` (``"USD"``), ``sec_type``
    (``"STK"``), ``us`` (bool: a US listing; default from exchange and currency). Every
    plugin's lists are concatenated. Used by ``ibkr-cp simulate``, ``ibkr-cp demo`` and anyone
    calling :func:`~backtrader_ibkr_cp.plugins.apply_simulator_instruments`.
    """
