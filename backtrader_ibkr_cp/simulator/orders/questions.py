"""IBKR's precautionary questions ("order reply messages") and the pending-reply chain.

Asked for each ticket, in this order, unless its message id was suppressed with
``POST /iserver/questions/suppress`` in the current brokerage session (texts from IBKR's
samples and V1's suppressible-id table, reference/orders/ibkr-cp-orders.md §2.4-2.5):

- ``o354`` no market data: the conid's market-data availability is ``N`` (not subscribed).
- ``o163`` price far from market: a limit price more than 3% away from the last price.
- ``o10331`` stop-order risks: any STP, STOP_LIMIT, TRAIL or TRAILLMT ticket.
- ``o0`` "will most likely trigger and fill immediately": a MKT order during regular hours
  (IBKR asked this of a real paper MKT order, XJ 2023), or a stop already through the market.
  Real gateways label it ``o0``; V1 lists the same text as suppressible id ``o403``, so
  suppressing either id silences it.

A request with questions is held under a reply id (a UUID): each answer is one question
``[{"id", "message": [text], "isSuppressed": false, "messageIds": [id]}]``; confirming it
(``POST /iserver/reply/{id}`` with ``{"confirmed": true}``) asks the next one or carries out the
request. Ids are single-use, and a new order submission (place or modify) drops every pending
reply (V1: "Submitting other orders ... will cancel the order"), so stale ids answer 400
``{"error": "reply id not found: '<id>'"}``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from ..instruments import SimInstrument
from .bodies import listing_of
from .tickets import STOP_TYPES, Ticket

__all__ = ["Pending", "Question", "Replies", "questions_for"]

_CONFIRM = "\nAre you sure you want to submit this order?"
PERCENT_CONSTRAINT = 3.0


@dataclass(frozen=True)
class Question:
    """One question: its IBKR ``message_id``, ``text`` and the ids that suppress it."""

    message_id: str
    text: str
    suppressed_by: frozenset[str]


def _question(message_id: str, text: str, *also: str) -> Question:
    return Question(message_id, text + _CONFIRM, frozenset({message_id, *also}))


def _number(cents: int) -> str:
    return f"{cents / 100}"


def questions_for(
    ticket: Ticket, inst: SimInstrument, last: int, has_data: bool, in_hours: bool
) -> list[Question]:
    """The questions ``ticket`` raises at last price ``last`` (cents); ``in_hours`` = the
    ticket could trade now."""
    found: list[Question] = []
    if not has_data:
        found.append(
            _question(
                "o354",
                "You are submitting an order without market data. We strongly recommend "
                "against this as it may result in erroneous and unexpected trades.",
            )
        )
    limit = ticket.price if ticket.order_type in ("LMT", "STOP_LIMIT", "TRAILLMT") else None
    if limit is not None and abs(limit - last) * 100.0 > PERCENT_CONSTRAINT * last:
        order = (
            f"{ticket.side} {ticket.quantity} {inst.symbol} {listing_of(inst)} @ {_number(limit)}"
        )
        found.append(
            _question(
                "o163",
                f'The following order "{order}" price exceeds \nthe Percentage constraint of '
                f"{PERCENT_CONSTRAINT:g}%.",
            )
        )
    if ticket.order_type in STOP_TYPES:
        found.append(
            _question(
                "o10331",
                "You are about to submit a stop order. Please be aware of the various stop "
                "order types available and the risks associated with each one.",
            )
        )
    stop = ticket.price if ticket.order_type == "STP" else None
    if ticket.order_type == "STOP_LIMIT":
        stop = ticket.aux_price
    buy = ticket.side == "BUY"
    through = stop is not None and (last >= stop if buy else last <= stop)
    if in_hours and (ticket.order_type == "MKT" or through):
        found.append(
            _question("o0", "This order will most likely trigger and fill immediately.", "o403")
        )
    return found


@dataclass
class Pending:
    """A request waiting for answers: ``kind`` ``"place"`` (``payload`` = tickets) or
    ``"modify"`` (``payload`` = (order id, raw body)), and the questions still to ask."""

    kind: str
    payload: Any
    questions: list[Question]


class Replies:
    """Pending reply ids (not thread-safe; the desk holds the lock). Ids are seeded UUIDs."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"{seed}:reply-ids")
        self._pending: dict[str, Pending] = {}

    def ask(self, pending: Pending) -> list[dict[str, Any]]:
        """Hold ``pending`` under a new id and answer its next question."""
        question = pending.questions[0]
        reply_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._pending[reply_id] = pending
        return [
            {
                "id": reply_id,
                "message": [question.text],
                "isSuppressed": False,
                "messageIds": [question.message_id],
            }
        ]

    def take(self, reply_id: str) -> Pending | None:
        """The request held under ``reply_id`` (removed), or None when unknown or used."""
        return self._pending.pop(reply_id, None)

    def clear(self) -> None:
        """Drop every pending request."""
        self._pending.clear()
