"""Spans of bar start times: ``[start, end)``, UTC, millisecond resolution. Pure.

A span is what the store says it holds ("every bar whose start lies in the span is here") and
what :meth:`BarStore.missing` answers. Times are kept as epoch milliseconds (IBKR's ``t``) on
disk and as tz-aware UTC datetimes in :class:`Span`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ..errors import ConfigError

__all__ = ["EPOCH", "Span", "from_ms", "merge", "subtract", "to_ms"]

#: 1970-01-01 00:00 UTC.
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def _aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise ConfigError(f"{name} {value!r} is not a datetime; pass a tz-aware datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(f"{name} {value.isoformat()} is naive; pass a tz-aware datetime (UTC)")
    return value


def to_ms(value: datetime, *, name: str = "time", ceil: bool = False) -> int:
    """Epoch milliseconds of tz-aware ``value``, rounded down (``ceil``: up)."""
    delta = _aware(name, value) - EPOCH
    whole, rest = divmod(delta, _MS)
    return int(whole) + (1 if ceil and rest else 0)


def from_ms(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds ``ms`` (exact)."""
    return EPOCH + timedelta(milliseconds=int(ms))


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """Bar start times ``start <= t < end`` (tz-aware UTC; ``start < end``)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = _aware("span start", self.start).astimezone(timezone.utc)
        end = _aware("span end", self.end).astimezone(timezone.utc)
        if not start < end:
            raise ConfigError(
                f"span end {end.isoformat()} is not after its start {start.isoformat()}; "
                "give a later end"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def of_ms(cls, start_ms: int, end_ms: int) -> Span:
        return cls(from_ms(start_ms), from_ms(end_ms))

    @property
    def start_ms(self) -> int:
        return to_ms(self.start)

    @property
    def end_ms(self) -> int:
        return to_ms(self.end)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def intersection(self, other: Span) -> Span | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Span(start, end) if start < end else None

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def merge(spans: Iterable[Span]) -> list[Span]:
    """The union of ``spans``: sorted, overlapping and touching spans joined."""
    out: list[Span] = []
    for span in sorted(spans):
        if out and span.start <= out[-1].end:
            if span.end > out[-1].end:
                out[-1] = Span(out[-1].start, span.end)
        else:
            out.append(span)
    return out


def subtract(span: Span, covered: Sequence[Span]) -> list[Span]:
    """The parts of ``span`` outside every span of ``covered``, oldest first."""
    gaps: list[Span] = []
    cursor = span.start
    for held in merge(covered):
        if held.end <= cursor:
            continue
        if held.start >= span.end:
            break
        if held.start > cursor:
            gaps.append(Span(cursor, held.start))
        cursor = max(cursor, held.end)
        if cursor >= span.end:
            break
    if cursor < span.end:
        gaps.append(Span(cursor, span.end))
    return gaps
