"""The ``ibkr-cp`` command (console script ``backtrader_ibkr_cp.cli:main``)."""

from __future__ import annotations

from .app import build_parser, main

__all__ = ["build_parser", "main"]
