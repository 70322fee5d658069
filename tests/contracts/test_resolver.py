"""ContractResolver with a plain-Python search function: every branch, the cache, the disk."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from backtrader_ibkr_cp.contracts.resolver import (
    AmbiguousContract,
    ContractNotFound,
    ContractResolver,
    ContractSpec,
)
from backtrader_ibkr_cp.errors import ConfigError, DataUnavailable, GatewayConnectionError
from backtrader_ibkr_cp.models.contract import Contract
from backtrader_ibkr_cp.timing import FakeClock

AAPL = Contract(265598, "AAPL", "STK", "NASDAQ", "USD", "APPLE INC")
AAPL_MEXI = Contract(38708077, "AAPL", "STK", "MEXI", "MXN", "APPLE INC", "America/Mexico_City")
AAPL_EBS = Contract(273982664, "AAPL", "STK", "EBS", "CHF", "APPLE INC", "Europe/Zurich")
IBM = Contract(8314, "IBM", "STK", "NYSE", "USD", "INTL BUSINESS MACHINES CORP")
IBM_LSE = Contract(41645598, "IBM", "STK", "LSE", "GBP", "INTL BUSINESS MACHINES CORP")
TWIN_A = Contract(1001, "TWIN", "STK", "NYSE", "USD", "TWIN ONE")
TWIN_B = Contract(1002, "TWIN", "STK", "NASDAQ", "USD", "TWIN TWO")
SAP_IBIS = Contract(14204, "SAP", "STK", "IBIS", "EUR", "SAP SE")
SAP_FWB = Contract(14205, "SAP", "STK", "FWB", "EUR", "SAP SE")

LISTINGS = {
    "AAPL": [AAPL, AAPL_MEXI, AAPL_EBS],
    "IBM": [IBM, IBM_LSE],
    "TWIN": [TWIN_A, TWIN_B],
    "SAP": [SAP_IBIS, SAP_FWB],
}


#: Real seconds a test waits for a thread (or a rendezvous) before it fails.
SETTLE = 10.0


class FakeSearch:
    """A search function that counts its calls (optionally failing). ``inside`` is called in
    each search before it answers: a test blocks searches there to have them overlap."""

    def __init__(
        self, error: Exception | None = None, inside: Callable[[], object] | None = None
    ) -> None:
        self.calls: list[tuple[str, str]] = []
        self.error = error
        self.inside = inside
        self._lock = threading.Lock()

    def __call__(self, symbol: str, sec_type: str) -> list[Contract]:
        with self._lock:
            self.calls.append((symbol, sec_type))
        if self.inside is not None:
            self.inside()
        if self.error is not None:
            raise self.error
        return [c for c in LISTINGS.get(symbol, []) if c.sec_type == sec_type]


def epoch_clock() -> FakeClock:
    """A fake clock reading seconds since the epoch (the cache stamps entries with it);
    pass its ``now`` as the resolver's clock."""
    return FakeClock(1_700_000_000.0)


def test_us_listing_is_preferred_without_a_currency() -> None:
    search = FakeSearch()
    resolver = ContractResolver(search)
    assert resolver.resolve("AAPL") == AAPL
    assert resolver.resolve("IBM") == IBM
    assert search.calls == [("AAPL", "STK"), ("IBM", "STK")]


def test_exchange_and_currency_select_a_listing() -> None:
    resolver = ContractResolver(FakeSearch())
    assert resolver.resolve("AAPL-STK-MEXI") == AAPL_MEXI
    assert resolver.resolve("AAPL-STK-SMART-CHF") == AAPL_EBS
    assert resolver.resolve("IBM-STK-LSE-GBP") == IBM_LSE
    assert resolver.resolve("aapl-stk-nasdaq-usd") == AAPL


def test_contract_passes_through_without_a_request() -> None:
    search = FakeSearch()
    contract = Contract(42, "XYZ")
    assert ContractResolver(search).resolve(contract) is contract
    assert search.calls == []


def test_conid_uses_the_cache_or_a_minimal_contract_without_a_request() -> None:
    search = FakeSearch()
    resolver = ContractResolver(search)
    assert resolver.resolve(265598) == Contract(265598, "265598")
    assert search.calls == []
    resolver.resolve("AAPL")
    assert resolver.resolve(38708077) == AAPL_MEXI
    assert resolver.resolve("265598") == AAPL
    assert len(search.calls) == 1


def test_unknown_symbol_is_not_found_with_advice() -> None:
    search = FakeSearch()
    resolver = ContractResolver(search)
    with pytest.raises(ContractNotFound, match=r"no STK contract for 'XYZ'") as info:
        resolver.resolve("XYZ")
    assert isinstance(info.value, DataUnavailable)
    assert "ibkr-cp search XYZ" in str(info.value)
    assert info.value.candidates == ()
    with pytest.raises(ContractNotFound):
        resolver.resolve("XYZ")
    assert len(search.calls) == 2  # "not found" is not cached


def test_no_listing_matches_the_filters() -> None:
    with pytest.raises(ContractNotFound) as info:
        ContractResolver(FakeSearch()).resolve("AAPL-STK-NYSE")
    message = str(info.value)
    assert "AAPL-STK-NYSE" in message and "AAPL-STK-NASDAQ-USD (conid 265598" in message
    assert "AAPL-STK-MEXI-MXN (conid 38708077" in message
    assert info.value.candidates == (AAPL, AAPL_MEXI, AAPL_EBS)


def test_several_matches_are_ambiguous_and_list_every_candidate() -> None:
    with pytest.raises(AmbiguousContract) as info:
        ContractResolver(FakeSearch()).resolve("TWIN")
    error = info.value
    assert isinstance(error, ConfigError)
    assert error.candidates == (TWIN_A, TWIN_B)
    assert "TWIN-STK-NYSE-USD (conid 1001, TWIN ONE)" in str(error)
    assert "TWIN-STK-NASDAQ-USD (conid 1002, TWIN TWO)" in str(error)
    assert "fuller spec" in str(error) and "conid" in str(error)


def test_non_us_listings_are_ambiguous_when_no_us_one_exists() -> None:
    with pytest.raises(AmbiguousContract):
        ContractResolver(FakeSearch()).resolve("SAP")
    assert ContractResolver(FakeSearch()).resolve("SAP-STK-FWB") == SAP_FWB


def test_choose_hook_picks_among_candidates() -> None:
    seen: list[tuple[ContractSpec, Sequence[Contract]]] = []

    def choose(spec: ContractSpec, candidates: Sequence[Contract]) -> Contract | None:
        seen.append((spec, candidates))
        return candidates[-1] if spec.symbol == "TWIN" else None

    resolver = ContractResolver(FakeSearch(), choose=choose)
    assert resolver.resolve("TWIN") == TWIN_B
    assert seen == [(ContractSpec("TWIN"), (TWIN_A, TWIN_B))]
    with pytest.raises(AmbiguousContract):
        resolver.resolve("SAP")  # the hook declined
    assert resolver.resolve("AAPL") == AAPL  # unambiguous: the hook is not asked
    assert len(seen) == 2


def test_choose_must_return_a_contract() -> None:
    resolver = ContractResolver(FakeSearch(), choose=lambda spec, found: "TWIN")  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigError, match="not a Contract"):
        resolver.resolve("TWIN")


def test_supports() -> None:
    resolver = ContractResolver(FakeSearch())
    assert resolver.supports("AAPL") and resolver.supports(265598) and resolver.supports(AAPL)
    assert resolver.supports("TWIN")  # ambiguous, but it exists
    assert not resolver.supports("XYZ")
    assert not resolver.supports("AAPL-STOCK")
    failing = ContractResolver(FakeSearch(error=GatewayConnectionError("down")))
    with pytest.raises(GatewayConnectionError):
        failing.supports("AAPL")


def test_bad_spec_is_a_config_error_before_any_search() -> None:
    search = FakeSearch()
    with pytest.raises(ConfigError, match="SYMBOL\\[-SECTYPE"):
        ContractResolver(search).resolve("AAPL-STK-SMART-USD-EXTRA")
    assert search.calls == []


def test_memory_cache_expires_after_ttl() -> None:
    clock, search = epoch_clock(), FakeSearch()
    resolver = ContractResolver(search, ttl=60.0, clock=clock.now)
    resolver.resolve("AAPL")
    clock.advance(59)
    resolver.resolve("AAPL-STK-MEXI")  # same search, still fresh
    assert len(search.calls) == 1
    clock.advance(1)
    resolver.resolve("AAPL")
    assert len(search.calls) == 2


def test_zero_ttl_searches_every_time() -> None:
    search = FakeSearch()
    resolver = ContractResolver(search, ttl=0)
    resolver.resolve("AAPL")
    resolver.resolve("AAPL")
    assert len(search.calls) == 2


@pytest.mark.parametrize("ttl", [-1, float("nan"), True, "1"])
def test_bad_ttl(ttl: object) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        ContractResolver(FakeSearch(), ttl=ttl)  # type: ignore[arg-type]


def test_disk_cache_survives_a_new_resolver(tmp_path: Path) -> None:
    clock = epoch_clock()
    first = FakeSearch()
    ContractResolver(first, cache_dir=tmp_path / "cache", clock=clock.now).resolve("AAPL")
    document = json.loads((tmp_path / "cache" / "contracts.json").read_text())
    assert document["version"] == 1
    assert document["entries"]["AAPL|STK"]["fetched_at"] == clock.now()
    assert [c["contract_id"] for c in document["entries"]["AAPL|STK"]["contracts"]] == [
        265598, 38708077, 273982664,
    ]  # fmt: skip
    second = FakeSearch()
    resolver = ContractResolver(second, cache_dir=tmp_path / "cache", clock=clock.now)
    assert resolver.resolve("AAPL-STK-EBS") == AAPL_EBS
    assert resolver.resolve(38708077) == AAPL_MEXI
    assert second.calls == []
    assert not list((tmp_path / "cache").glob(".contracts-*"))  # no temporary file left


def test_disk_cache_expires_after_ttl(tmp_path: Path) -> None:
    clock = epoch_clock()
    ContractResolver(FakeSearch(), cache_dir=tmp_path, ttl=100, clock=clock.now).resolve("IBM")
    clock.advance(100)
    search = FakeSearch()
    resolver = ContractResolver(search, cache_dir=tmp_path, ttl=100, clock=clock.now)
    assert resolver.resolve("IBM") == IBM
    assert search.calls == [("IBM", "STK")]


def test_expired_entries_are_dropped_from_the_file(tmp_path: Path) -> None:
    clock = epoch_clock()
    resolver = ContractResolver(FakeSearch(), cache_dir=tmp_path, ttl=100, clock=clock.now)
    resolver.resolve("IBM")
    clock.advance(150)
    resolver.resolve("AAPL")
    entries = json.loads((tmp_path / "contracts.json").read_text())["entries"]
    assert list(entries) == ["AAPL|STK"]


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"version": 2, "entries": {}}', '{"version": 1}',
     '{"version": 1, "entries": {"A|STK": {"fetched_at": "x", "contracts": []}}}',
     '{"version": 1, "entries": {"A|STK": {"fetched_at": 1, "contracts": [{"symbol": "A"}]}}}',
     "\x00\xff"],
)  # fmt: skip
def test_corrupt_cache_file_is_ignored_with_a_warning(
    tmp_path: Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "contracts.json").write_text(content, encoding="utf-8", errors="surrogateescape")
    search = FakeSearch()
    with caplog.at_level(logging.WARNING, logger="backtrader_ibkr_cp.contracts.cache"):
        assert ContractResolver(search, cache_dir=tmp_path).resolve("AAPL") == AAPL
    assert "ignoring the contract cache" in caplog.text
    assert search.calls == [("AAPL", "STK")]
    assert json.loads((tmp_path / "contracts.json").read_text())["version"] == 1  # rewritten


def test_unwritable_cache_dir_is_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="backtrader_ibkr_cp.contracts.cache"):
        assert ContractResolver(FakeSearch(), cache_dir=blocker / "sub").resolve("AAPL") == AAPL
    assert "could not write the contract cache" in caplog.text


def test_clear_forgets_everything(tmp_path: Path) -> None:
    search = FakeSearch()
    resolver = ContractResolver(search, cache_dir=tmp_path)
    resolver.resolve("AAPL")
    resolver.clear()
    resolver.resolve("AAPL")
    assert len(search.calls) == 2


def test_concurrent_resolutions_of_one_symbol_search_once() -> None:
    """The first search is held until all eight threads run: none of them gets an answer
    meanwhile, and once it is let go they all share its one search."""
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        assert release.wait(SETTLE)

    search = FakeSearch(inside=hold)
    resolver = ContractResolver(search)
    results: list[Contract] = []
    threads = [threading.Thread(target=lambda: results.append(resolver.resolve("AAPL")))
               for _ in range(8)]  # fmt: skip
    for thread in threads:
        thread.start()
    assert entered.wait(SETTLE)
    assert results == []  # every thread waits for the one search in progress
    release.set()
    for thread in threads:
        thread.join(SETTLE)
    assert results == [AAPL] * 8
    assert search.calls == [("AAPL", "STK")]


def test_different_symbols_resolve_in_parallel() -> None:
    """Each search waits inside until the other one is inside too: had the resolver run
    them one after the other, the rendezvous would fail (after a generous timeout)."""
    rendezvous = threading.Barrier(2, timeout=SETTLE)
    search = FakeSearch(inside=rendezvous.wait)
    resolver = ContractResolver(search)
    found: dict[str, Contract] = {}
    errors: list[BaseException] = []

    def resolve(symbol: str) -> None:
        try:
            found[symbol] = resolver.resolve(symbol)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=resolve, args=(s,)) for s in ("AAPL", "IBM")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2 * SETTLE)
    assert errors == []
    assert found == {"AAPL": AAPL, "IBM": IBM}
    assert sorted(search.calls) == [("AAPL", "STK"), ("IBM", "STK")]
