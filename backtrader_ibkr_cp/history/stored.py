"""Read-through history: bars from the Parquet bar store, and only what it lacks from the gateway.

:class:`StoredBars` stands where the :class:`~.service.BarService` stands for a feed (its
stream's ``bars``). Asked for the bars starting in ``[start, end)`` at gateway time ``now``, it
asks the store which spans are missing, fetches each through the service (validated, healed,
transformed, like every bar the package delivers), writes it, and answers from the store. The
store keeps completed, settled bars only (:meth:`BarStore.horizon`), so the end of a span that
is still open (bars complete at ``now`` but not yet settled, or still forming) is fetched and
delivered but not written: the next run asks for it again.

:func:`stored_contract` and :func:`covers` tell whether a run needs the gateway at all.

Threading model: a :class:`StoredBars` is used by one stream at a time (its runner thread);
several, in several processes, may share one store (the store locks each series).
"""

from __future__ import annotations

import logging
from datetime import datetime

from ..barstore import BarStore
from ..errors import AmbiguousContract, BarStoreError, BarStoreLookupError
from ..models import Bar, Contract, Timeframe
from ..models.calendar import expects_bars
from .service import BarService

__all__ = ["StoredBars", "covers", "stored_contract"]

log = logging.getLogger(__name__)


class StoredBars:
    """A bar source reading through ``store`` (see the module docstring).

    Args:
        service: fetches what the store lacks (the client's :class:`BarService`).
        store: the bar store.

    A store error (a corrupt or newer file, a folder it cannot write) is raised as the typed
    :class:`~backtrader_ibkr_cp.errors.BarStoreError` and raised again by every later call,
    without asking the gateway again: the stream retries a failed fetch, and a retry cannot
    mend a file.
    """

    def __init__(self, service: BarService, store: BarStore) -> None:
        self.service = service
        self.store = store
        self._failed: BarStoreError | None = None

    def fetch(
        self,
        contract: Contract,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        now: datetime | None = None,
        outside_rth: bool = False,
    ) -> list[Bar]:
        """Bars starting in ``[start, end)`` complete at gateway time ``now`` (None: the
        store's clock for the store's part, every bar the gateway sends after it), sorted, one
        per timestamp, as :meth:`BarService.fetch` answers."""
        if self._failed is not None:
            raise self._failed
        moment = now if now is not None else self.store.clock()
        horizon = self.store.horizon(timeframe, outside_rth=outside_rth, now=moment)
        upto = min(end, horizon)
        bars: list[Bar] = []
        if start < upto:
            try:
                self._fill(contract, timeframe, start, upto, moment, outside_rth)
                bars = self.store.read(contract, timeframe, start, upto, outside_rth)
            except BarStoreError as exc:
                self._failed = exc
                raise
        tail_start = max(start, horizon)
        if tail_start < end:
            bars += self.service.fetch(
                contract, timeframe, tail_start, end, now=now, outside_rth=outside_rth
            )
        return bars

    def _fill(
        self,
        contract: Contract,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        now: datetime,
        outside_rth: bool,
    ) -> None:
        """Fetch and write each span of ``[start, end)`` the store is missing at ``now``."""
        for gap in self.store.missing(contract, timeframe, start, end, outside_rth, now=now):
            fetched = self.service.fetch(
                contract, timeframe, gap.start, gap.end, now=now, outside_rth=outside_rth
            )
            if not fetched and expects_bars(
                gap.start, gap.end, now, timeframe, outside_rth=outside_rth
            ):
                # "No data." for a span with sessions is often transient: never record it as
                # fetched (the stream asks again, then reports it).
                log.info("not storing an empty answer for %s of conid %s", gap, contract.conid)
                continue
            self.store.write(
                contract, timeframe, fetched, span=gap, outside_rth=outside_rth, now=now
            )

    def __repr__(self) -> str:
        return f"StoredBars({self.store!r})"


def stored_contract(store: BarStore, spec: str | int | Contract) -> Contract | None:
    """The contract ``spec`` names among those ``store`` holds, or None (not held, or several
    match: the gateway then decides)."""
    try:
        return store.contract(spec)
    except (BarStoreLookupError, AmbiguousContract):
        return None


def covers(
    store: BarStore,
    contract: Contract,
    timeframe: Timeframe,
    start: datetime,
    end: datetime | None,
    *,
    outside_rth: bool = False,
    now: datetime | None = None,
) -> bool:
    """True when ``store`` holds every bar of ``[start, end)`` (None: up to now) that is
    complete and settled at ``now`` (default: the store's clock): a run over that span needs
    no gateway."""
    moment = now if now is not None else store.clock()
    upto = moment if end is None else end
    if upto <= start:
        return True
    return not store.missing(contract, timeframe, start, upto, outside_rth, now=moment)
