"""``IBKRCPBroker``: backtrader's broker for the IBKR account a Client Portal Gateway trades.

The same strategy code that runs on backtrader's ``BackBroker`` sends real orders to the
account (the paper account ``DU...`` unless the store says ``allow_live=True``) and sees
IBKR's fills, commissions, positions and cash. ``store.getbroker()`` returns it.

Threading model: nothing here waits for HTTP. ``buy``/``sell``/``cancel`` queue work for the
broker's :class:`~backtrader_ibkr_cp.trading.worker.BrokerWorker` thread (and notify
Submitted at once); ``next()``, which Cerebro calls every cycle, hands the orders created in
the last cycle to the worker (a bracket, or OCO orders created together, go to IBKR in one
request) and applies what the worker reported (acceptances, fills, cancels, account
snapshots) to backtrader's orders and positions, notifying a clone of the order for every
change, as backtrader's own brokers do. ``getcash``/``getvalue``/``getposition`` read caches.
Run live sessions with ``Cerebro(quicknotify=True)`` so notifications are not held until the
next bar.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import os
from datetime import datetime, time, timezone
from typing import Any

import backtrader as bt
from backtrader.brokers.bbroker import BackBroker
from backtrader.order import BuyOrder, Order, SellOrder
from backtrader.position import Position
from backtrader.utils import date2num, num2date

from ..errors import ConfigError, LiveTradingRefused
from ..models.orders import Execution
from ..trading import (
    Accepted,
    AccountSnapshot,
    BrokerWorker,
    Cancel,
    ExecType,
    External,
    Fill,
    Finished,
    Leg,
    Note,
    OrderRequest,
    Place,
    QuestionPolicy,
    State,
    StoreNote,
    Tif,
    suppressed_ids,
)
from ..trading.pushes import PushReader
from ..trading.worker import WorkerSettings
from ..wire import is_paper_account
from .store import IBKRCPStore

__all__ = ["IBKRCPBroker"]

_EXECTYPES = {
    Order.Market: ExecType.MARKET,
    Order.Close: ExecType.CLOSE,
    Order.Limit: ExecType.LIMIT,
    Order.Stop: ExecType.STOP,
    Order.StopLimit: ExecType.STOP_LIMIT,
    Order.StopTrail: ExecType.STOP_TRAIL,
    Order.StopTrailLimit: ExecType.STOP_TRAIL_LIMIT,
    Order.Historical: ExecType.HISTORICAL,
}
#: backtrader writes Order.DAY as the order day's 23:59:59.9999.
_END_OF_DAY = time(23, 59, 59)
#: Runs in this process: each gets its own cOID prefix.
_RUNS = itertools.count(1)


class MetaIBKRCPBroker(BackBroker.__class__):  # type: ignore[misc]
    def __init__(cls, name: str, bases: tuple[type, ...], dct: dict[str, Any]) -> None:
        super().__init__(name, bases, dct)
        IBKRCPStore.BrokerCls = cls


class IBKRCPBroker(bt.BrokerBase, metaclass=MetaIBKRCPBroker):  # type: ignore[misc]
    """backtrader broker trading the store's IBKR account through the gateway.

    The account is the store's ``account`` (default: the gateway's selected account). A live
    (non-paper) account is refused before anything is sent unless the store has
    ``allow_live=True``.

    Params:
        questions ("confirm"): IBKR's precautionary order questions: ``"confirm"`` (answer
            yes; each is reported through notify_store), ``"reject"`` (the order ends
            Rejected with IBKR's text), or a callable ``(message_ids, text) -> bool``.
        suppress (True): suppress IBKR's usual question ids at start (True), none (False),
            or the given list of message ids.
        use_positions (True): the account's positions in the strategy's contracts are
            loaded at start, as a simulated order per data (so ``self.position`` and a later
            ``close()`` know them, as backtrader's Oanda broker does).
        outside_rth (False): orders may execute outside regular trading hours (an order's
            ``outside_rth=...`` kwarg overrides it).
        orders_every (5.0): seconds between reads of the live orders and executions (IBKR
            allows one request per 5 s to each; with the WebSocket they are a safety net).
        account_every (30.0): seconds between reads of cash, value and positions.
    """

    params = (
        ("questions", "confirm"),
        ("suppress", True),
        ("use_positions", True),
        ("outside_rth", False),
        ("orders_every", 5.0),
        ("account_every", 30.0),
    )

    def __init__(self, **kwargs: Any) -> None:
        store = kwargs.pop("_store", None)
        if store is None:
            store = IBKRCPStore(**kwargs)
        elif kwargs:
            raise ConfigError(f"unknown IBKRCPBroker parameter(s) {', '.join(sorted(kwargs))}")
        super().__init__()
        self._store = store
        self._policy = QuestionPolicy.of(self.p.questions)
        self._suppress = suppressed_ids(self.p.suppress)
        self._reset()

    def _reset(self) -> None:
        self.notifs: collections.deque[Order | None] = collections.deque()
        self.orders: dict[int, Order] = {}
        self.positions: collections.defaultdict[Any, Position] = collections.defaultdict(Position)
        self.startingcash = self.cash = 0.0
        self.startingvalue = self.value = 0.0
        self._worker: BrokerWorker | None = None
        self._pushes: tuple[Any, Any, Any] | None = None
        self._account: str | None = None
        self._account_positions: dict[int, Any] = {}
        self._prefix = ""
        self._cycle: list[list[Order]] = []
        self._pending_bracket: dict[int, list[Order]] = {}
        self._mismatch: dict[int, float] = {}
        self._snapshot_time: datetime | None = None
        self._recent: list[tuple[datetime, float]] = []  # cash moves of fills after it
        self._fills_since: set[int] = set()
        self._holding = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, choose and check the account, read cash, value and positions, start the
        worker. Raises LiveTradingRefused (a live account without ``allow_live``) before
        anything is sent."""
        super().start()
        self._reset()
        store = self._store
        store.start(broker=self)
        store.hold(self)
        self._holding = True
        try:
            self._open(store)
        except BaseException:
            # The exception leaves cerebro.run(), which then stops nothing: end the run here.
            self.stop()
            store.end_run()
            raise

    def _open(self, store: IBKRCPStore) -> None:
        client = store.connect()
        api = client.api
        accounts = api.iserver_accounts()
        account = store.p.account or accounts.selected_account
        if not account or account not in accounts.accounts:
            raise ConfigError(
                "the store's account is not one of the "
                f"{accounts.count} account(s) this gateway login can trade; pass one of them "
                "as IBKRCPStore(account=...) (see Client Portal)"
            )
        paper = accounts.is_paper if account == accounts.selected_account else None
        if paper is None:
            paper = is_paper_account(account)
        if not paper and not store.p.allow_live:
            raise LiveTradingRefused(
                "the gateway is logged in to a LIVE (non-paper) account and IBKRCPStore was "
                "not told to trade it: nothing was sent. Log in with your paper-trading user, "
                "or pass IBKRCPStore(allow_live=True) to trade real money on purpose"
            )
        if account != accounts.selected_account:
            api.switch_account(account)
        if self._suppress:
            api.suppress_questions(self._suppress)
        self._account = account
        self._prefix = _coid_prefix()
        worker = BrokerWorker(
            api,
            account,
            WorkerSettings(
                questions=self._policy,
                orders_every=float(self.p.orders_every),
                account_every=float(self.p.account_every),
            ),
            clock=store.clock,
            cancel=store.cancel_token,
        )
        snapshot = worker.account_snapshot()
        worker.mark_history()
        self._apply_account(snapshot, initial=True)
        self.startingcash, self.startingvalue = self.cash, self.value
        self._worker = worker
        worker.start()
        self._listen(store, worker)
        store.broker_ready(self)

    def _listen(self, store: IBKRCPStore, worker: BrokerWorker) -> None:
        """Order and trade updates pushed over the store's WebSocket (when it streams) go
        to the worker as they happen; its polls stay as the safety net."""
        socket = store.socket()
        if socket is None:
            return
        reader = PushReader()

        def on_orders(items: Any) -> None:
            worker.commands.offer(reader.orders(items))

        def on_trades(items: Any) -> None:
            worker.commands.offer(reader.trades(items))

        socket.add_order_listener(on_orders)
        socket.add_trade_listener(on_trades)
        self._pushes = (socket, on_orders, on_trades)

    def _detach(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the worker (open orders stay at IBKR) and let go of the store."""
        worker, self._worker = self._worker, None
        pushes, self._pushes = self._pushes, None
        if pushes is not None:
            socket, on_orders, on_trades = pushes
            socket.remove_order_listener(on_orders)
            socket.remove_trade_listener(on_trades)
        if worker is not None:
            worker.stop()
        if self._holding:
            self._holding = False
            self._store.release(self)

    # -- data ---------------------------------------------------------------------------

    def data_started(self, data: Any) -> None:
        """A feed of this broker's store resolved its contract: with ``use_positions``, the
        account's position in it becomes a simulated order (no notify_order, but the trade
        is opened, so ``close()`` closes it)."""
        conid = _conid(data)
        if not self.p.use_positions or conid is None or self.positions[data].size:
            return
        held = self._account_positions.get(conid)
        if held is None or not held.position:
            return
        size = float(held.position)
        price = float(held.avg_price or held.market_price or 0.0)
        cls = BuyOrder if size > 0 else SellOrder
        order = cls(data=data, size=abs(size), price=price, exectype=Order.Market, simulated=True)
        order.addcomminfo(self.getcommissioninfo(data))
        order.execute(0, size, price, 0, 0.0, 0.0, size, 0.0, 0.0, 0.0, 0.0, size, price)
        order.completed()
        self.positions[data] = Position(size, price)
        self.notify(order)
        self._store.put_notification(
            f"{data._name or data.p.dataname}: the account holds {size:g} (avg price "
            f"{price:g}); loaded as the strategy's position"
        )

    # -- orders -------------------------------------------------------------------------

    def _order(self, cls: type[Order], owner: Any, data: Any, size: float,
               price: float | None = None, plimit: float | None = None,
               exectype: int | None = None, valid: Any = None, tradeid: int = 0,
               oco: Any = None, trailamount: float | None = None,
               trailpercent: float | None = None, parent: Any = None, transmit: bool = True,
               **kwargs: Any) -> Order:  # fmt: skip
        """``buy``/``sell`` with backtrader's signature (``cls``: BuyOrder or SellOrder)."""
        order = cls(
            owner=owner, data=data, size=size, price=price, pricelimit=plimit,
            exectype=exectype, valid=valid, tradeid=tradeid, oco=oco,
            trailamount=trailamount, trailpercent=trailpercent, parent=parent,
            transmit=transmit,
        )  # fmt: skip
        return self._submit(order, kwargs)

    buy = functools.partialmethod(_order, BuyOrder)
    sell = functools.partialmethod(_order, SellOrder)

    def _submit(self, order: Order, kwargs: dict[str, Any]) -> Order:
        """Submitted now; the order goes to IBKR at the next cycle (with the rest of its
        bracket or OCO group)."""
        order.addinfo(**kwargs)
        order.addcomminfo(self.getcommissioninfo(order.data))
        order.submit(self)
        self.orders[order.ref] = order
        self.notify(order)
        if self._worker is None:
            self._reject(order, "the broker is not started (add it to Cerebro and run)")
            return order
        if order.parent is not None:
            group = self._pending_bracket.get(order.parent.ref)
            if group is None:
                self._reject(
                    order,
                    "its bracket parent was already sent; create the parent with "
                    "transmit=False and its children right after it (buy_bracket does)",
                )
                return order
            group.append(order)
            if order.transmit:
                self._cycle.append(self._pending_bracket.pop(order.parent.ref))
            return order
        if not order.transmit:
            self._pending_bracket[order.ref] = [order]
            return order
        if order.oco is not None:
            group = next((g for g in self._cycle if g[0].ref == order.oco.ref), None)
            if group is None:
                group = next(
                    (g for g in self._cycle if any(o.ref == order.oco.ref for o in g)), None
                )
            if group is None:
                self._reject(
                    order,
                    "IBKR joins orders in a one-cancels-all group only when they are sent "
                    "together: create every OCO order in the same next()",
                )
                return order
            group.append(order)
            return order
        self._cycle.append([order])
        return order

    def cancel(self, order: Order) -> None:
        """Cancel ``order`` (idempotent; an order still being sent is cancelled as soon as
        IBKR knows it; a fill may still come first)."""
        if order.ref not in self.orders or not order.alive():
            return
        for group in [*self._cycle, *self._pending_bracket.values()]:
            if any(o.ref == order.ref for o in group):
                for member in list(group):
                    if member is order or getattr(member.parent, "ref", None) == order.ref:
                        group.remove(member)
                        member.cancel()
                        self.notify(member)
                self._cycle = [g for g in self._cycle if g]
                return
        if self._worker is not None:
            self._worker.commands.put(Cancel(order.ref))

    def _reject(self, order: Order, reason: str) -> None:
        order.reject(self)
        order.addinfo(reason=reason)
        self.notify(order)
        self._store.put_notification(f"order {order.ref} rejected: {reason}")

    def _flush(self) -> None:
        """Hand the orders created in the last cycle to the worker."""
        cycle, self._cycle = self._cycle, []
        assert self._worker is not None
        for group in cycle:
            legs = self._legs(group)
            if legs is not None:
                self._worker.commands.put(Place(legs))

    def _legs(self, group: list[Order]) -> tuple[Leg, ...] | None:
        head = group[0]
        oca = len(group) > 1 and head.parent is None and all(o.parent is None for o in group)
        coid = f"{self._prefix}{head.ref}"
        legs = []
        for order in group:
            request = self._request(order, oca_ref=head.ref if oca else None)
            if isinstance(request, str):
                for member in group:
                    self._reject(member, request if member is order else f"order {order.ref} of "
                                 f"its group cannot be sent: {request}")  # fmt: skip
                return None
            child = order.parent is not None
            legs.append(
                Leg(
                    request,
                    coid=None if child else f"{self._prefix}{order.ref}",
                    parent_coid=coid if child else None,
                    oca=oca,
                )
            )
        return tuple(legs)

    def _request(self, order: Order, *, oca_ref: int | None) -> OrderRequest | str:
        """The order as an :class:`OrderRequest`, or why it cannot be sent."""
        data = order.data
        conid = _conid(data)
        if conid is None:
            return f"{data._name or data}: this broker trades IBKRCPData feeds only"
        kind = _EXECTYPES.get(order.exectype)
        if kind is None:
            return f"unknown execution type {order.exectype!r}"
        info = order.info
        tif, good_till = self._tif(order, info)
        if isinstance(tif, str):
            return tif
        trailing = kind in (ExecType.STOP_TRAIL, ExecType.STOP_TRAIL_LIMIT)
        price = order.created.price if trailing else order.price
        plimit = order.created.pricelimit if trailing else order.pricelimit
        outside = info.get("outside_rth", info.get("outsideRth", self.p.outside_rth))
        return OrderRequest(
            ref=order.ref,
            conid=conid,
            buy=order.isbuy(),
            size=abs(order.created.size),
            exectype=kind,
            price=_finite(price),
            plimit=_finite(plimit),
            trailamount=order.trailamount or None,
            trailpercent=order.trailpercent or None,
            tif=tif,
            good_till=good_till,
            outside_rth=bool(outside),
            parent_ref=order.parent.ref if order.parent is not None else None,
            oca_ref=oca_ref,
        )

    @staticmethod
    def _tif(order: Order, info: Any) -> tuple[Tif | str, datetime | None]:
        """``valid`` after backtrader's conversion: None -> GTC, 0 -> DAY, ``Order.DAY``
        (the day's 23:59:59.9999) -> DAY, another date -> GTD; ``tif="IOC"`` -> IOC."""
        asked = info.get("tif")
        if asked is not None:
            try:
                tif = Tif(str(asked).upper())
            except ValueError:
                return f"tif={asked!r} is not valid; use DAY, GTC, GTD or IOC", None
            if tif is not Tif.GTD:
                return tif, None
        valid = order.valid
        if valid is None:
            return Tif.GTC, None
        if not valid:
            return Tif.DAY, None
        local = order.data.num2date(valid)  # in the data's time zone, as backtrader wrote it
        if local.time() >= _END_OF_DAY:
            return Tif.DAY, None
        return Tif.GTD, num2date(valid).replace(tzinfo=timezone.utc)

    # -- what the worker reported (Cerebro's thread) --------------------------------------

    def next(self) -> None:
        """Cerebro calls this every cycle: send the last cycle's orders, apply what IBKR
        reported, and mark where this cycle's notifications end."""
        worker = self._worker
        if worker is not None:
            self._flush()
            for item in worker.outputs.drain():
                self._apply(item)
        self.notifs.append(None)

    def get_notification(self) -> Order | None:
        try:
            return self.notifs.popleft()
        except IndexError:
            return None

    def notify(self, order: Order) -> None:
        self.notifs.append(order.clone())

    def _apply(self, item: Any) -> None:
        if isinstance(item, Fill):
            self._fill(item)
        elif isinstance(item, Accepted):
            order = self.orders.get(item.ref)
            if order is not None and order.status == Order.Submitted:
                order.accept(self)
                self.notify(order)
        elif isinstance(item, Finished):
            self._finish(item)
        elif isinstance(item, AccountSnapshot):
            self._apply_account(item)
        elif isinstance(item, External):
            self._external(item.execution)
        elif isinstance(item, (Note, StoreNote)):
            self._store.put_notification(item.message)

    def _fill(self, fill: Fill) -> None:
        order = self.orders.get(fill.ref)
        if order is None:
            return
        if order.status == Order.Submitted:
            order.accept(self)
            self.notify(order)
        data = order.data
        size = fill.size if order.isbuy() else -fill.size
        position = self.positions[data]
        psize, pprice, opened, closed = position.update(size, fill.price)
        comminfo = order.comminfo
        closedvalue = comminfo.getoperationcost(closed, pprice)
        share = abs(closed) / abs(size) if size else 0.0
        closedcomm = fill.commission * share
        openedvalue = comminfo.getoperationcost(opened, fill.price)
        openedcomm = fill.commission - closedcomm
        margin = comminfo.getvaluesize(size, fill.price)
        pnl = comminfo.profitandloss(-closed, pprice, fill.price)
        when = date2num(fill.time.astimezone(timezone.utc).replace(tzinfo=None))
        order.execute(when, size, fill.price, closed, closedvalue, closedcomm, opened,
                      openedvalue, openedcomm, margin, pnl, psize, pprice)  # fmt: skip
        if order.executed.remsize:
            order.partial()
        else:
            order.completed()
        self._move_cash(fill.time, -(size * fill.price + fill.commission))
        conid = _conid(data)
        if conid is not None:
            self._fills_since.add(conid)
        self.notify(order)

    def _move_cash(self, when: datetime, delta: float) -> None:
        """A fill's cash, unless the last account snapshot was read after it (IBKR's cash
        then includes it already)."""
        if self._snapshot_time is not None and when <= self._snapshot_time:
            return
        self.cash += delta
        self._recent.append((when, delta))

    def _finish(self, item: Finished) -> None:
        order = self.orders.get(item.ref)
        if order is None or not order.alive():
            return
        order.addinfo(reason=item.reason)
        if item.state is State.CANCELED:
            order.cancel()
        elif item.state is State.EXPIRED:
            order.status = Order.Expired
        elif item.state is State.MARGIN:
            order.margin()
        else:
            order.reject(self)
        if item.state in (State.MARGIN, State.REJECTED):
            self._store.put_notification(f"order {order.ref} {item.state.value.lower()}: "
                                         f"{item.reason}")  # fmt: skip
        self.notify(order)

    def _external(self, execution: Execution) -> None:
        self._store.put_notification(
            f"an execution not caused by this run: {execution.side} {execution.size:g} of conid "
            f"{execution.conid} at {execution.price:g} (IBKR execution "
            f"{execution.execution_id}); the position is reconciled with the account"
        )

    def _apply_account(self, snapshot: AccountSnapshot, *, initial: bool = False) -> None:
        """IBKR's cash, value and positions; a position in a traded contract that differs
        from the strategy's in two snapshots in a row with no fill in between was changed
        outside the strategy: reported and adopted (as a simulated order)."""
        if snapshot.time is not None:
            self._snapshot_time = snapshot.time
            self._recent = [(t, d) for t, d in self._recent if t > snapshot.time]
        self.cash = snapshot.cash + sum(d for _, d in self._recent)
        self.value = snapshot.value
        self._account_positions = dict(snapshot.positions)
        if initial:
            return
        for data, position in list(self.positions.items()):
            conid = _conid(data)
            if conid is None or conid in self._fills_since or self._open_orders(data):
                self._mismatch.pop(conid or -1, None)
                continue
            held = snapshot.positions.get(conid)
            theirs = float(held.position) if held is not None else 0.0
            if math.isclose(theirs, position.size, abs_tol=1e-9):
                self._mismatch.pop(conid, None)
                continue
            if self._mismatch.get(conid) != theirs:
                self._mismatch[conid] = theirs
                continue
            del self._mismatch[conid]
            self._adopt(data, position, theirs, held)
        self._fills_since.clear()

    def _adopt(self, data: Any, position: Position, theirs: float, held: Any) -> None:
        delta = theirs - position.size
        price = float(getattr(held, "market_price", None) or data.close[0])
        self._store.put_notification(
            f"{data._name or data.p.dataname}: the account holds {theirs:g}, the strategy "
            f"{position.size:g}: changed outside the strategy (the IBKR app, another "
            "program?); the strategy's position now follows the account"
        )
        cls = BuyOrder if delta > 0 else SellOrder
        order = cls(data=data, size=abs(delta), price=price, exectype=Order.Market, simulated=True)
        order.addcomminfo(self.getcommissioninfo(data))
        psize, pprice, opened, closed = position.update(delta, price)
        order.execute(0, delta, price, closed, 0.0, 0.0, opened, 0.0, 0.0, 0.0, 0.0, psize, pprice)
        order.completed()
        self.notify(order)

    def _open_orders(self, data: Any) -> bool:
        return any(o.data is data and o.alive() for o in self.orders.values())

    # -- account reads (caches; never HTTP) ------------------------------------------------

    def getcash(self) -> float:
        return float(self.cash)

    def getvalue(self, datas: Any = None) -> float:
        """The account's value (cash + positions at their last price); with ``datas``, the
        value of those datas' positions (what ``order_target_*`` needs)."""
        if datas is not None:
            return float(sum(self._position_value(d) for d in datas))
        traded = {_conid(d) for d in self.positions}
        others = sum(
            float(p.market_value or 0.0)
            for conid, p in self._account_positions.items()
            if conid not in traded
        )
        return float(self.cash + others + sum(self._position_value(d) for d in self.positions))

    def _position_value(self, data: Any) -> float:
        position = self.positions.get(data)
        if position is None or not position.size:
            return 0.0
        price = data.close[0] if len(data) else position.price
        return float(self.getcommissioninfo(data).getvaluesize(position.size, price))

    get_cash = getcash
    get_value = getvalue

    def getposition(self, data: Any, clone: bool = True) -> Position:
        position = self.positions[data]
        return position.clone() if clone else position

    def orderstatus(self, order: Order) -> int:
        known = self.orders.get(order.ref)
        return int((known or order).status)

    def get_orders_open(self, safe: bool = False) -> list[Order]:
        return [o.clone() if safe else o for o in self.orders.values() if o.alive()]

    # -- pickling (optstrategy workers) ----------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_worker"] = None
        state["_holding"] = False
        return state


def _conid(data: Any) -> int | None:
    contract = getattr(data, "_contract", None)
    return contract.conid if contract is not None else None


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _coid_prefix() -> str:
    """A per-run cOID prefix (IBKR wants cOIDs unique for 24 h): ``bt`` + process id + run +
    time, base 36; nothing in it identifies a user."""
    stamp = int(datetime.now(timezone.utc).timestamp() * 1000)
    return f"bt{os.getpid():x}{next(_RUNS):x}{_base36(stamp)}-"  # wire.COID_PREFIX


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return out or "0"
