"""Formatted gateway numbers: prices with C/H prefixes, thousands separators, K/M/B volumes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backtrader_ibkr_cp.errors import DataIntegrityError
from backtrader_ibkr_cp.models.values import parse_conid, parse_number, parse_price, parse_volume


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("173.96", (173.96, "")),
        ("C173.96", (173.96, "C")),
        ("H173.96", (173.96, "H")),
        (" 168.42 ", (168.42, "")),
        ("1,234.50", (1234.5, "")),
        (173.96, (173.96, "")),
        (0, (0.0, "")),
        ("-1.5", (-1.5, "")),
    ],
)
def test_parse_price(text: object, expected: tuple[float, str]) -> None:
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1,300", 1300.0), ("600", 600.0), ("1,234,567", 1234567.0), ("0.5", 0.5), (42, 42.0)],
)
def test_parse_number(text: object, expected: float) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25.5M", 25_500_000.0),
        ("830K", 830_000.0),
        ("1.2B", 1_200_000_000.0),
        ("1,234", 1234.0),
        ("83916700", 83_916_700.0),
        ("0.1K", 100.0),
        ("25.5m", 25_500_000.0),
        (1500, 1500.0),
    ],
)
def test_parse_volume(text: object, expected: float) -> None:
    assert parse_volume(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "abc",
        "1,30",
        "1,3000",
        "nan",
        "inf",
        "NaN",
        "1e400",
        "C",
        "X173.96",
        "CC1",
        "1.2.3",
        True,
        None,
        [1],
        {"a": 1},
        float("nan"),
        float("inf"),
        10**400,
        "1_000",
    ],
)
def test_parse_price_rejects(text: object) -> None:
    with pytest.raises(DataIntegrityError) as info:
        parse_price(text, field="field 31")
    assert "field 31" in str(info.value)
    assert info.value.context["field"] == "field 31"


@pytest.mark.parametrize(
    "text", ["1,30", "", "1.2X", "K", "-5", "-1K", "12MM", float("nan"), False]
)
def test_parse_volume_rejects(text: object) -> None:
    with pytest.raises(DataIntegrityError, match="volume"):
        parse_volume(text)


def test_error_names_the_bad_text() -> None:
    with pytest.raises(DataIntegrityError, match=r"'C'") as info:
        parse_price("C", field="last price")
    assert "last price" in str(info.value)
    assert "retry" in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"), [(265598, 265598), ("265598", 265598), (" 8314 ", 8314)]
)
def test_parse_conid(value: object, expected: int) -> None:
    assert parse_conid(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "", "abc", "²", True, None, 1.5, "1" * 40])
def test_parse_conid_rejects(value: object) -> None:
    with pytest.raises(DataIntegrityError, match="conid"):
        parse_conid(value)


finite = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False)


@given(finite)
def test_parse_number_round_trips_grouped_numbers(value: float) -> None:
    text = f"{value:,.4f}"
    assert parse_number(text) == pytest.approx(round(value, 4), abs=1e-4)
    assert parse_number(f"{value:.6f}") == float(f"{value:.6f}")


@given(st.integers(min_value=0, max_value=10**15))
def test_parse_number_round_trips_integers(value: int) -> None:
    assert parse_number(f"{value:,}") == float(value)
    assert parse_volume(f"{value:,}") == float(value)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False), st.sampled_from(["", "C", "H"]))
def test_parse_price_round_trips(value: float, prefix: str) -> None:
    text = f"{prefix}{value:.2f}"
    price, found = parse_price(text)
    assert found == prefix
    assert price == float(f"{value:.2f}")


@given(st.integers(min_value=0, max_value=99_999), st.sampled_from([("K", 3), ("M", 6), ("B", 9)]))
def test_parse_volume_suffix_is_exact(tenths: int, suffix: tuple[str, int]) -> None:
    letter, power = suffix
    text = f"{tenths // 10}.{tenths % 10}{letter}"
    assert parse_volume(text) == tenths * 10 ** (power - 1)


@given(st.text(max_size=12))
def test_parsers_raise_only_data_integrity_errors(text: str) -> None:
    for parse in (parse_number, parse_volume, lambda t: parse_price(t)[0]):
        try:
            value = parse(text)
        except DataIntegrityError:
            continue
        assert math.isfinite(value)
