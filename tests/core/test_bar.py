from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backtrader_ibkr_cp import Bar, BarValidator, DataIntegrityError, InvalidBar

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=timezone.utc)


def bar(minute: int, o: float = 10, h: float = 11, lo: float = 9, c: float = 10.5) -> Bar:
    return Bar(T0 + timedelta(minutes=minute), o, h, lo, c, 100.0)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"high": 8.0}, "high 8.0 is below low"),
        ({"open": 12.0}, "open 12.0 is outside"),
        ({"close": 8.5}, "close 8.5 is outside"),
        ({"volume": -1.0}, "volume -1.0 is negative"),
        ({"timestamp": datetime(2024, 3, 4, 14, 30)}, "not tz-aware UTC"),
        ({"timestamp": datetime(1970, 1, 1, tzinfo=timezone.utc)}, "not positive"),
        ({"close": float("nan")}, "finite"),
    ],
)
def test_invalid_bars_are_named(kwargs: dict[str, object], problem: str) -> None:
    fields = {"timestamp": T0, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5}
    fields["volume"] = 100.0
    fields.update(kwargs)
    b = Bar(**fields)  # type: ignore[arg-type]
    assert not b.is_valid()
    with pytest.raises(DataIntegrityError, match=problem) as info:
        b.validate()
    assert "invalid bar" in str(info.value)


def test_valid_bar_validates_to_itself() -> None:
    b = bar(0)
    assert b.validate() is b


def test_default_mode_drops_reports_and_counts() -> None:
    seen: list[InvalidBar] = []
    v = BarValidator(on_invalid=seen.append)
    out = v.validate([bar(0), bar(1, h=1), bar(2)])
    assert [b.timestamp for b in out] == [T0, T0 + timedelta(minutes=2)]
    assert v.dropped == 1 and len(seen) == 1 and "below low" in seen[0].reason


def test_strict_mode_raises_naming_the_bar() -> None:
    with pytest.raises(DataIntegrityError, match="2024-03-04T14:31:00"):
        BarValidator(strict=True).validate([bar(0), bar(1, h=1)])


def test_sorts_out_of_order_and_drops_exact_repeats() -> None:
    v = BarValidator()
    out = v.validate([bar(2), bar(0), bar(1), bar(0)])
    assert [b.timestamp.minute for b in out] == [30, 31, 32]
    assert v.repeated == 1 and v.reordered == 1 and v.dropped == 0


def test_conflicting_duplicate_is_invalid() -> None:
    v = BarValidator()
    out = v.validate([bar(0), bar(0, c=10.7)])
    assert out == [bar(0)] and v.dropped == 1


def test_after_skips_already_delivered() -> None:
    out = BarValidator().validate([bar(0), bar(1), bar(2)], after=T0 + timedelta(minutes=1))
    assert [b.timestamp.minute for b in out] == [32]
