"""The pluggy markers of backtrader_ibkr_cp (one project name for specs and implementations).

A plugin marks its functions with :data:`hookimpl`::

    from backtrader_ibkr_cp.plugins import hookimpl

    @hookimpl
    def ibkr_cp_on_request(event):
        ...
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec"]

#: The pluggy project name, also the entry-point group plugins are discovered in.
PROJECT = "backtrader_ibkr_cp"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
