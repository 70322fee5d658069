"""Cerebro-level fixtures: simulators, the recording strategy, truth comparison helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import LIVE_SPEED, TUESDAY_MORNING, WEEKEND
from tests.support.recorder import Recorder, run
from tests.support.truth import Row, truth_rows


@pytest.fixture(autouse=True)
def fresh_stores() -> Iterator[None]:
    """Each test gets its own stores (and stops whatever a failing test left running)."""
    IBKRCPStore._reset()
    yield
    IBKRCPStore._reset()


@pytest.fixture
def frozen_sim() -> Iterator[GatewaySimulator]:
    """A simulator with its clock stopped on a weekend (history only)."""
    with GatewaySimulator(seed=11, speed=0, start=WEEKEND, penalty_seconds=5) as sim:
        yield sim


@pytest.fixture
def live_sim() -> Iterator[GatewaySimulator]:
    """A simulator running LIVE_SPEED times faster than real time, mid-session."""
    with GatewaySimulator(
        seed=5, speed=LIVE_SPEED, start=TUESDAY_MORNING, penalty_seconds=5
    ) as sim:
        yield sim


@pytest.fixture
def recorder() -> type[Recorder]:
    return Recorder


@pytest.fixture
def run_cerebro() -> Callable[..., Recorder]:
    return run


@pytest.fixture
def to_rows() -> Callable[..., list[Row]]:
    return truth_rows
