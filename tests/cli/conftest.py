"""Fixtures for the ``ibkr-cp`` tests: a frozen-clock simulator (``closed_port`` is in
``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import WEDNESDAY_EVENING


@pytest.fixture
def sim(
    monkeypatch: pytest.MonkeyPatch, sim_factory: Callable[..., GatewaySimulator]
) -> GatewaySimulator:
    """Frozen on a Wednesday after the close (seed 3); ``$IBKR_GATEWAY_URL`` unset."""
    monkeypatch.delenv("IBKR_GATEWAY_URL", raising=False)
    return sim_factory(seed=3, speed=0.0, start=WEDNESDAY_EVENING)
