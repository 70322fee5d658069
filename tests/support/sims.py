"""Simulators as the tests start them: one place for the defaults."""

from __future__ import annotations

from typing import Any

from backtrader_ibkr_cp.simulator import GatewaySimulator

from .instants import TUESDAY_MORNING

#: What :func:`make_sim` uses unless told otherwise: seed 7, the market clock frozen on
#: :data:`~tests.support.instants.TUESDAY_MORNING` (regular hours).
SIM_DEFAULTS: dict[str, Any] = {"seed": 7, "speed": 0, "start": TUESDAY_MORNING}


def make_sim(**kwargs: Any) -> GatewaySimulator:
    """A :class:`GatewaySimulator`, not started, with :data:`SIM_DEFAULTS` for what
    ``kwargs`` leaves out. Tests whose bars are compared with ground truth pass their own
    ``seed`` (the bars depend on it); live tests pass a ``speed``."""
    return GatewaySimulator(**{**SIM_DEFAULTS, **kwargs})
