"""``examples/sweep_ray.py`` on a local Ray instance with 2 CPUs, against the gateway simulator:
the grid's results equal a plain ``optstrategy`` run over the same store, and only the filling
task asks the gateway anything (counted by the simulator)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from backtrader_ibkr_cp import IBKRCPStore
from backtrader_ibkr_cp.history.planner import minimum_requests
from backtrader_ibkr_cp.models import Timeframe
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.barstore.feed_runs import HISTORY, ny
from tests.support.instants import WEEKEND

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sweep_ray.py"


@pytest.fixture
def example() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("sweep_ray", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sweep_ray"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("sweep_ray", None)


@pytest.fixture
def ray(example: ModuleType) -> Iterator[Any]:
    """A local Ray instance with 2 CPUs, set up as the example sets it up (started after the
    test's environment is set, so its workers inherit it)."""
    try:
        import ray
    except ImportError:
        pytest.skip("ray cannot be imported: pip install -e .[ray] (or .[test])")
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=example.RUNTIME_ENV
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        IBKRCPStore._reset()


def test_the_ray_sweep_equals_optstrategy_and_only_the_fill_asks_the_gateway(
    ray: Any, example: ModuleType, tmp_path: Path
) -> None:
    series = example.Series(start=dt.datetime(2024, 2, 12), end=dt.datetime(2024, 3, 15, 16))
    store = str(tmp_path / "bars")
    with GatewaySimulator(seed=11, speed=0, start=WEEKEND) as sim:
        results = example.sweep_on_ray(store, sim.url, series)
        one_fill = minimum_requests(Timeframe.MINUTE_5, ny(2024, 2, 12), ny(2024, 3, 15, 15, 55))
        assert sim.stats.requests[HISTORY] == one_fill  # the filling task's, nobody else's
        assert sim.stats.rate_limited == 0
        sim.stats.reset()
        again = example.sweep_on_ray(store, sim.url, series)
        assert sim.stats.requests == {}  # the store covers the span: no task asks anything
        reference = example.sweep_with_optstrategy(store, sim.url, series)
    assert len(results) == len(example.grid_points()) == 8
    assert results == again == reference
    assert len({value for _, _, value, _ in results}) > 1  # the parameter sets really differ
