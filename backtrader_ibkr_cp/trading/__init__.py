"""Trading through the gateway, below backtrader: order requests and their mapping to IBKR's
tickets, one state machine per order (the book), the question policy, and the worker thread
that carries out every order, cancel and account request. Nothing here imports backtrader;
``bt.broker`` adapts it."""

from __future__ import annotations

from .book import Accepted, External, Fill, Finished, Note, OrderBook, State
from .questions import DEFAULT_SUPPRESSED, QuestionPolicy, suppressed_ids
from .requests import ExecType, OrderRequest, Tif, Unsupported, ticket_for
from .worker import AccountSnapshot, BrokerWorker, Cancel, Leg, Place, Pushed, StoreNote

__all__ = [
    "DEFAULT_SUPPRESSED",
    "Accepted",
    "AccountSnapshot",
    "BrokerWorker",
    "Cancel",
    "ExecType",
    "External",
    "Fill",
    "Finished",
    "Leg",
    "Note",
    "OrderBook",
    "OrderRequest",
    "Place",
    "Pushed",
    "QuestionPolicy",
    "State",
    "StoreNote",
    "Tif",
    "Unsupported",
    "suppressed_ids",
    "ticket_for",
]
