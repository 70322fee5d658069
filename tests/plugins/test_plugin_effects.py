"""The installed sample plugin takes effect: simulator instruments, contract choice, bar
transformation and request observation, all against the simulator over loopback."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from backtrader_ibkr_cp import Bar, Contract, Timeframe
from backtrader_ibkr_cp.contracts.resolver import AmbiguousContract, ContractResolver
from backtrader_ibkr_cp.errors import ConfigError, DataIntegrityError
from backtrader_ibkr_cp.gateway import GatewayClient
from backtrader_ibkr_cp.plugins import (
    PluginSettings,
    apply_simulator_instruments,
    build_plugin_manager,
    hookimpl,
    plugin_choose_contract,
    plugin_request_listener,
    plugin_simulator_instruments,
    plugin_transform_bars,
)
from backtrader_ibkr_cp.simulator import GatewaySimulator
from tests.support.instants import WEDNESDAY_EVENING

START, END = datetime(2024, 3, 4, tzinfo=timezone.utc), datetime(2024, 3, 6, tzinfo=timezone.utc)


@pytest.fixture
def pm(sample_plugin: Any) -> Any:
    return build_plugin_manager(PluginSettings())


@pytest.fixture
def sim(pm: Any, sim_factory: Callable[..., GatewaySimulator]) -> GatewaySimulator:
    simulator = sim_factory(seed=5, speed=0.0, start=WEDNESDAY_EVENING)
    assert apply_simulator_instruments(simulator, pm) == 2
    return simulator


@pytest.fixture
def client(sim: GatewaySimulator) -> Iterator[GatewayClient]:
    with GatewayClient(sim.url) as gateway:
        gateway.authenticate()
        yield gateway


def test_plugin_instruments_appear_in_the_simulators_secdef_search(client: GatewayClient) -> None:
    found = {(c.contract_id, c.exchange) for c in client.search_contract("SMPL")}
    assert found == {(990001, "NYSE"), (990002, "NASDAQ")}


def test_plugin_choose_contract_resolves_an_ambiguous_symbol(
    client: GatewayClient, pm: Any
) -> None:
    plain = ContractResolver(client.api.secdef_search)
    with pytest.raises(AmbiguousContract):
        plain.resolve("SMPL")
    chosen = ContractResolver(client.api.secdef_search, choose=plugin_choose_contract(pm))
    contract = chosen.resolve("SMPL")
    assert (contract.contract_id, contract.exchange) == (990001, "NYSE")


def test_plugin_transform_bars_applies_the_split(
    client: GatewayClient, sim: GatewaySimulator, pm: Any
) -> None:
    smpl_nyse = Contract(990001, "SMPL", exchange="NYSE", currency="USD")
    adjusted = client.fetch_bars(smpl_nyse, Timeframe.HOUR_1, START, END)  # plugins on
    truth = sim.truth(990001, "1h", START, END)
    assert len(adjusted) == len(truth) == 14
    for bar, raw in zip(adjusted, truth, strict=True):
        assert bar.timestamp == raw.timestamp
        assert bar.close == pytest.approx(raw.close / 2) and bar.volume == raw.volume * 2
    with GatewayClient(sim.url, plugins=False) as plain:
        bars = plain.fetch_bars(smpl_nyse, Timeframe.HOUR_1, START, END)
    assert [b.close for b in bars] == [t.close for t in truth]
    assert plugin_transform_bars("SMPL", Timeframe.HOUR_1, bars, pm) == adjusted
    assert plugin_transform_bars("AAPL", Timeframe.HOUR_1, bars, pm) == bars  # not split


def test_plugin_on_request_counts_every_gateway_request(
    client: GatewayClient, pm: Any, sample_plugin: Any
) -> None:
    """The client routes every request to the plugins by itself (no listener to add)."""
    seen: list[str] = []
    sample_plugin.REQUESTS.clear()
    client.add_listener(lambda e: seen.append(e.details["path"]) if e.kind == "request" else None)
    client.fetch_bars("AAPL", Timeframe.HOUR_1, START, END)
    client.search_contract("MSFT")
    assert seen and sum(sample_plugin.REQUESTS.values()) == len(seen)
    assert sample_plugin.REQUESTS["/iserver/secdef/search"] == seen.count("/iserver/secdef/search")


def test_plugin_answers_are_checked(site: Any) -> None:
    candidates = [Contract(1, "X", exchange="NYSE"), Contract(2, "X", exchange="NASDAQ")]
    bar = Bar(datetime(2024, 3, 4, 14, 30, tzinfo=timezone.utc), 1.0, 2.0, 0.5, 1.5, 100.0)

    class Rogue:
        @hookimpl
        def ibkr_cp_choose_contract(self, candidates: list[Contract]) -> Contract:
            return Contract(3, "X")

        @hookimpl
        def ibkr_cp_transform_bars(self, bars: list[Bar]) -> list[Bar]:
            return [bars[0], dataclasses.replace(bars[0])]

        @hookimpl
        def ibkr_cp_simulator_instruments(self) -> list[dict[str, Any]]:
            return [{"symbol": "ZZ", "conid": "12"}]

    pm = build_plugin_manager(PluginSettings(autoload=False))
    pm.register(Rogue(), name="rogue")
    with pytest.raises(ConfigError, match=r"plugin 'rogue' chose .* not one of the candidates"):
        plugin_choose_contract(pm)("X", candidates)
    with pytest.raises(DataIntegrityError, match="plugin 'rogue' returned X bars out of order"):
        plugin_transform_bars("X", Timeframe.MINUTE_1, [bar], pm)
    with pytest.raises(ConfigError, match="needs an int 'conid' > 0, got '12'"):
        plugin_simulator_instruments(pm)


def test_a_failing_request_observer_never_breaks_requests(
    client: GatewayClient, site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        @hookimpl
        def ibkr_cp_on_request(self, event: Any) -> None:
            raise RuntimeError("metrics backend down")

    pm = build_plugin_manager(PluginSettings(autoload=False))
    pm.register(Broken(), name="broken_metrics")
    client.add_listener(plugin_request_listener(pm))
    assert client.search_contract("AAPL")
    assert client.search_contract("MSFT")
    failures = [r for r in caplog.records if "broken_metrics" in r.getMessage()]
    assert len(failures) == 1  # logged once, not per request
