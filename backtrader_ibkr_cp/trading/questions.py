"""How IBKR's precautionary order questions are answered. Pure.

IBKR answers an order with a question ("This order will most likely trigger and fill
immediately. Are you sure?") that must be answered before the order is placed
(``POST /iserver/reply/{id}``, chains of several are normal). A :class:`QuestionPolicy`
decides each answer: confirm (the default; each confirmed question is reported), reject (the
order ends Rejected with IBKR's text), or a callable deciding by message id and text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["DEFAULT_SUPPRESSED", "QuestionPolicy", "suppressed_ids"]

#: Message ids suppressed at start with ``suppress=True``: questions about price distance,
#: market data, size and value limits, immediate fills and order risks (IBKR's suppressible
#: list, reference/orders/ibkr-cp-orders.md §2.5). Only ids IBKR documents as suppressible.
DEFAULT_SUPPRESSED = ("o163", "o354", "o382", "o383", "o403", "o451", "o10151", "o10152", "o10331")

#: ``decide(message_ids, text) -> True to confirm``.
Decider = Callable[[Sequence[str], str], bool]


@dataclass(frozen=True)
class QuestionPolicy:
    """``"confirm"``, ``"reject"`` or a callable ``(message_ids, text) -> bool``."""

    mode: str = "confirm"
    decide_with: Decider | None = None

    @classmethod
    def of(cls, value: str | Decider | QuestionPolicy) -> QuestionPolicy:
        if isinstance(value, QuestionPolicy):
            return value
        if callable(value):
            return cls("callable", value)
        if value in ("confirm", "reject"):
            return cls(value)
        raise ConfigError(
            f"questions={value!r} is not valid; use 'confirm' (answer yes and report each), "
            "'reject' (decline: the order is rejected) or a callable (message_ids, text) -> bool"
        )

    def decide(self, message_ids: Sequence[str], text: str) -> bool:
        if self.decide_with is not None:
            return bool(self.decide_with(tuple(message_ids), text))
        return self.mode == "confirm"


def suppressed_ids(value: bool | Sequence[str] | None) -> tuple[str, ...]:
    """The message ids to suppress at start: True -> :data:`DEFAULT_SUPPRESSED`, False/None ->
    none, a list -> those (IBKR allows at most 51)."""
    if value is None or value is False:
        return ()
    if value is True:
        return DEFAULT_SUPPRESSED
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"suppress={value!r} is not valid; use True (the usual ids), False, or a list of "
            "IBKR message ids such as ['o163', 'o354']"
        )
    ids = tuple(dict.fromkeys(value))
    if len(ids) > 51:
        raise ConfigError(f"IBKR suppresses at most 51 message ids at once, got {len(ids)}")
    return ids
