"""ContractSpec: the SYMBOL[-SECTYPE[-EXCHANGE[-CURRENCY]]] grammar and conids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtrader_ibkr_cp.contracts.spec import ContractSpec
from backtrader_ibkr_cp.errors import ConfigError
from backtrader_ibkr_cp.models.contract import Contract


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AAPL", ContractSpec("AAPL", "STK", "SMART", "")),
        (" aapl ", ContractSpec("AAPL", "STK", "SMART", "")),
        ("AAPL-STK", ContractSpec("AAPL", "STK", "SMART", "")),
        ("AAPL-STK-SMART-USD", ContractSpec("AAPL", "STK", "SMART", "USD")),
        ("IBM-STK-NYSE", ContractSpec("IBM", "STK", "NYSE", "")),
        ("AAPL-STK--usd", ContractSpec("AAPL", "STK", "SMART", "USD")),
        ("BRK B", ContractSpec("BRK B", "STK", "SMART", "")),
        ("SPX-IND", ContractSpec("SPX", "IND", "SMART", "")),
        ("265598", ContractSpec(conid=265598)),
        (265598, ContractSpec(conid=265598)),
    ],
)
def test_parse(text: str | int, expected: ContractSpec) -> None:
    assert ContractSpec.parse(text) == expected
    assert ContractSpec.parse(expected) is expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "symbol ''"),
        ("-STK", "symbol ''"),
        ("AAPL-STOCK", "security type 'STOCK' is unknown"),
        ("AAPL-STK-SMART-DOLLARS", "currency 'DOLLARS'"),
        ("AAPL-STK-SMART-USD-X", "5 parts"),
        ("AAPL-STK-N$SE", "exchange 'N\\$SE'"),
        ("AA$PL", "symbol 'AA\\$PL'"),
        (0, "out of range"),
        (-5, "out of range"),
        ("99999999999", "out of range"),
        (True, "bool"),
        (1.5, "float"),
        (None, "NoneType"),
    ],
)
def test_bad_specs_show_the_grammar(text: object, why: str) -> None:
    with pytest.raises(ConfigError, match=why) as info:
        ContractSpec.parse(text)  # type: ignore[arg-type]
    assert "SYMBOL[-SECTYPE[-EXCHANGE[-CURRENCY]]]" in str(info.value)
    assert "or a conid" in str(info.value)


def test_str_round_trips() -> None:
    for text in ["AAPL-STK-SMART", "IBM-STK-NYSE-USD", "265598"]:
        assert str(ContractSpec.parse(text)) == text


def test_matches() -> None:
    nasdaq = Contract(265598, "AAPL", "STK", "NASDAQ", "USD")
    mexi = Contract(38708077, "AAPL", "STK", "MEXI", "MXN")
    assert ContractSpec.parse("AAPL").matches(nasdaq) and ContractSpec.parse("AAPL").matches(mexi)
    assert ContractSpec.parse("AAPL-STK-NASDAQ").matches(nasdaq)
    assert not ContractSpec.parse("AAPL-STK-NASDAQ").matches(mexi)
    assert not ContractSpec.parse("AAPL-STK-SMART-USD").matches(mexi)
    assert not ContractSpec.parse("AAPL-IND").matches(nasdaq)
    assert not ContractSpec.parse("MSFT").matches(nasdaq)
    assert ContractSpec.parse(265598).matches(nasdaq)


symbols = st.from_regex(r"[A-Z][A-Z0-9.]{0,5}", fullmatch=True)


@given(symbols, st.sampled_from(["STK", "IND", "BOND"]), st.sampled_from(["SMART", "NYSE"]),
       st.sampled_from(["", "USD", "EUR"]))  # fmt: skip
def test_parse_of_str_is_identity(symbol: str, sec_type: str, exchange: str, currency: str) -> None:
    spec = ContractSpec(symbol, sec_type, exchange, currency)
    assert ContractSpec.parse(str(spec)) == spec


@given(st.text(max_size=30))
def test_anything_parses_or_raises_config_error(text: str) -> None:
    try:
        spec = ContractSpec.parse(text)
    except ConfigError:
        return
    assert spec.conid is not None or spec.symbol


def test_contract_spec_strings_parse_back() -> None:
    for contract in [
        Contract(265598, "AAPL", "STK", "NASDAQ", "USD"),
        Contract(1, "X", "STK", "", "USD"),  # no exchange: SMART keeps USD in its slot
        Contract(2, "Y", "STK", "NYSE", ""),
    ]:
        spec = ContractSpec.parse(contract.spec())
        assert spec.matches(contract), contract.spec()
    assert Contract(1, "X", "STK", "", "USD").spec() == "X-STK-SMART-USD"
