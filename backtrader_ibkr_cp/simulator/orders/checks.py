"""What IBKR checks before it accepts an order: contract, account, cOID, parent, funds.

Refusals are :class:`~.tickets.TicketError` with IBKR's texts where known:

- a ``cOID`` used by an order placed in the last 24 simulated hours ("must be unique for a 24h
  span", V1) -> 200 ``Order couldn't be submitted: Local order ID=<cOID> is already
  registered.`` (the text ibind matches). Only orders that were placed register their cOID:
  a refused or declined request leaves it free.
- an unknown conid -> 200 ``No security definition has been found for the request`` (TWS's
  text); a non-USD listing is refused too (the account holds USD only).
- not enough funds -> 200 ``YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION
  YOUR EQUITY WITH LOAN VALUE [x USD] MUST EXCEED THE INITIAL MARGIN [y USD]`` (IBKR's margin
  reject). The rule (:mod:`.book`): an order that grows a position needs the growth's value at
  its reference price (its limit; without one, the higher of the last price and its stop) plus
  its commission, out of equity minus the value of all positions and of the working orders that
  grow positions. Orders that only reduce a position, and bracket children, always pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from ..calendar import DAY_MINUTES, locate
from ..instruments import InstrumentBook, SimInstrument
from ..market import MarketModel
from ..quotes import market_state, path_price
from .book import Book, exposure_increase
from .money import dollars, fixed_commission
from .state import FINAL, INACTIVE, OrderState
from .tickets import Ticket, TicketError
from .timing import utc

__all__ = ["COID_SPAN_SECONDS", "Checks"]

#: Simulated seconds a cOID stays registered after its order was placed.
COID_SPAN_SECONDS = 86_400


class Checks:
    """The engine's acceptance checks and the state they read (contracts, cOIDs, book)."""

    def __init__(
        self, market: MarketModel, instruments: InstrumentBook, account_id: str, cash: Decimal
    ) -> None:
        self.market = market
        self.instruments = instruments
        self.account_id = account_id
        self.book = Book(cash)
        self.orders: dict[int, OrderState] = {}
        self._coids: dict[str, tuple[int, float]] = {}

    # -- lookups -----------------------------------------------------------------------------

    def instrument(self, ticket: Ticket) -> SimInstrument:
        """The ticket's instrument; TicketError when unknown or not USD."""
        inst = self.instruments.get(ticket.conid)
        if inst is None:
            raise TicketError("No security definition has been found for the request")
        if inst.currency != "USD":
            raise TicketError(
                f"conid {inst.conid} ({inst.symbol} on {inst.exchange}) trades in "
                f"{inst.currency}; the simulated account trades USD listings only"
            )
        return inst

    def last_price(self, inst: SimInstrument, epoch: float) -> int:
        """The last price (cents) at ``epoch``: the path price while the market trades, else
        the latest close (as the snapshot shows)."""
        moment = locate(utc(epoch))
        if moment.trading and 0 <= moment.minute < DAY_MINUTES:
            bars = self.market.day(inst, moment.day)
            m = moment.minute
            return path_price(bars.open[m], bars.high[m], bars.low[m], bars.close[m], moment.second)
        return market_state(self.market, inst, utc(epoch)).last

    def open_by_coid(self, coid: str) -> OrderState | None:
        """The open order whose cOID is ``coid``, if any."""
        registered = self._coids.get(coid)
        if registered is None:
            return None
        st = self.orders.get(registered[0])
        return st if st is not None and not st.final else None

    def register_coid(self, coid: str, order_id: int, epoch: float) -> None:
        self._coids[coid] = (order_id, epoch)

    # -- checks ------------------------------------------------------------------------------

    def check(
        self, tickets: Sequence[Ticket], now: datetime, working: Iterable[OrderState]
    ) -> None:
        """Refuse the request (TicketError) as IBKR would; ``working`` = open orders."""
        epoch = now.timestamp()
        seen: set[str] = set()
        for ticket in tickets:
            if ticket.coid is not None:
                registered = self._coids.get(ticket.coid)
                recent = registered is not None and epoch - registered[1] < COID_SPAN_SECONDS
                if ticket.coid in seen or recent:
                    raise TicketError(
                        "Order couldn't be submitted: Local order ID="
                        f"{ticket.coid} is already registered."
                    )
                seen.add(ticket.coid)
        for ticket in tickets:
            self.instrument(ticket)
            if ticket.acct_id is not None and ticket.acct_id != self.account_id:
                raise TicketError(
                    f"acctId {ticket.acct_id!r} is not an account of this session; "
                    f"use {self.account_id}",
                    400,
                )
            parent = ticket.parent_coid
            if parent is not None and parent not in seen and self.open_by_coid(parent) is None:
                raise TicketError(
                    f"parentId {parent!r} matches no cOID of this request or of an open order"
                )
            if isinstance(ticket.good_till, datetime) and ticket.good_till <= now:
                raise TicketError(f"goodTillDate {ticket.good_till:%Y%m%d-%H:%M:%S} has passed")
        self.check_funds(tickets, epoch, working)

    def _reference(self, ticket: Ticket, epoch: float) -> Decimal:
        """The price an order is valued at: its limit, else the higher of last and stop."""
        if ticket.order_type in ("LMT", "STOP_LIMIT", "TRAILLMT") and ticket.price is not None:
            return dollars(ticket.price)
        last = self.last_price(self.instrument(ticket), epoch)
        return dollars(max(last, ticket.price or 0, ticket.aux_price or 0))

    def _exposure(self, ticket: Ticket, quantity: int, epoch: float) -> Decimal:
        signed = quantity if ticket.side == "BUY" else -quantity
        grow = exposure_increase(self.book.position(ticket.conid), signed)
        return grow * self._reference(ticket, epoch) if grow else Decimal(0)

    def check_funds(
        self, tickets: Sequence[Ticket], epoch: float, working: Iterable[OrderState]
    ) -> None:
        """The margin check of the module doc (children and deactivated tickets skip it)."""
        reserved = [
            self._exposure(st.ticket, st.remaining, epoch)
            for st in working
            if st.parent_id is None and st.status not in FINAL and st.status != INACTIVE
        ]
        cache: dict[int, Decimal] = {}

        def price_of(conid: int) -> Decimal:
            if conid not in cache:
                inst = self.instruments.get(conid)
                cache[conid] = dollars(self.last_price(inst, epoch)) if inst else Decimal(0)
            return cache[conid]

        for ticket in tickets:
            if ticket.parent_coid is not None or ticket.deactivated:
                continue
            grow = self._exposure(ticket, ticket.quantity, epoch)
            if not grow:
                continue
            reference = self._reference(ticket, epoch)
            need = grow + fixed_commission(ticket.quantity, ticket.quantity * reference)
            available, equity, margin = self.book.available_funds(price_of, reserved)
            if available < need:
                raise TicketError(
                    "YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR "
                    f"EQUITY WITH LOAN VALUE [{equity:.2f} USD] MUST EXCEED THE INITIAL MARGIN "
                    f"[{margin + need:.2f} USD]"
                )
            reserved.append(grow)
