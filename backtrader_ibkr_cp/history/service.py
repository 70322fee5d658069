"""The one path every bar takes: history fetch -> validation -> healing -> plugin transforms.

``GatewayClient.fetch_bars``, a feed's backfill and its live confirmations all call
:meth:`BarService.fetch`, so the same checks and the same ``ibkr_cp_transform_bars`` hooks
apply to every bar the package delivers. The hook is handed in as a callable (the composition
root builds it from the installed plugins); nothing here imports the plugin layer.

Threading model: as :class:`~.fetch.HistoryFetcher`, callable from several threads at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from ..errors import InvalidBarStop
from ..models import Bar, BarValidator, Contract, InvalidBar, Timeframe
from ..models.calendar import bar_end
from .fetch import HistoryFetcher

__all__ = ["HEAL_ATTEMPTS", "BarService", "BarTransform"]

log = logging.getLogger(__name__)

#: ``transform(symbol, timeframe, bars) -> bars``: the plugins' ``ibkr_cp_transform_bars``.
BarTransform = Callable[[str, Timeframe, list[Bar]], list[Bar]]

#: History requests made for a span when the answers held invalid bars (the first included):
#: a corrupted answer usually heals on the next request.
HEAL_ATTEMPTS = 3


class BarService:
    """Completed, validated, transformed bars from the gateway's history.

    Args:
        fetcher: plans and sends the history requests.
        strict: an invalid bar in the requested span raises :class:`InvalidBarStop` instead
            of being dropped.
        on_invalid: called with each dropped :class:`InvalidBar` (default mode).
        transform: the plugins' bar transform (None: none).
    """

    def __init__(
        self,
        fetcher: HistoryFetcher,
        *,
        strict: bool = False,
        on_invalid: Callable[[InvalidBar], None] | None = None,
        transform: BarTransform | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.strict = strict
        self.on_invalid = on_invalid
        self.transform = transform

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
        """Bars starting in ``[start, end)``, complete at gateway time ``now`` (None: every
        bar the gateway sends), sorted, one per timestamp.

        When the validator dropped invalid bars (each reported to ``on_invalid``) the span is
        asked again, up to :data:`HEAL_ATTEMPTS` requests in all; bars of every answer are
        merged. With ``strict`` the first invalid bar raises :class:`InvalidBarStop`.
        "No data." counts as no bars (the caller decides whether that is suspicious).
        """
        upto = end if now is None else min(end, now)
        if upto <= start:
            return []
        merged: dict[datetime, Bar] = {}
        for _ in range(HEAL_ATTEMPTS):
            rejected: list[InvalidBar] = []
            # Never strict here: a strict validator raises a plain DataIntegrityError, which
            # cannot be told from a malformed (transient) answer.
            validator = BarValidator(on_invalid=rejected.append)
            bars = self.fetcher.fetch(
                contract.conid,
                timeframe,
                start,
                upto,
                outside_rth=outside_rth,
                validator=validator,
                now=None,
            )
            self._report(rejected, contract)
            merged.update(
                (bar.timestamp, bar)
                for bar in bars
                if now is None or bar_end(bar.timestamp, timeframe, outside_rth=outside_rth) <= now
            )
            if not rejected:
                break
        result = [merged[t] for t in sorted(merged)]
        if self.transform is not None and result:
            result = self.transform(contract.symbol or str(contract.conid), timeframe, result)
        return result

    def _report(self, rejected: list[InvalidBar], contract: Contract) -> None:
        """Stop on the first invalid bar (strict), or report each."""
        if rejected and self.strict:
            first = rejected[0]
            raise InvalidBarStop(
                f"invalid bar from the gateway: {first.bar.describe()} ({first.reason}); "
                "stopped because strict=True: pass strict=False to drop invalid bars instead "
                "(each is reported via notify_store and its span asked again), or check this "
                "contract's data with the gateway",
                endpoint="/iserver/marketdata/history",
                conid=contract.conid,
            )
        for invalid in rejected:
            log.info("dropped an invalid bar of %s: %s", contract.conid, invalid.reason)
            if self.on_invalid is not None:
                self.on_invalid(invalid)
