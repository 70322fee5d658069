"""Fetch a span of historical bars: plan windows, request them concurrently, merge. I/O via
the ``api`` object only.

Threading model: :meth:`HistoryFetcher.fetch` may be called from several threads at once.
Each call runs its windows on its own short-lived pool of ``concurrency`` worker threads
(joined before the call returns, so no thread outlives it); the client's pacer additionally
caps history requests in flight across every caller (IBKR allows 5; the default is 4).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Protocol

from ..errors import ApiError, ConfigError, DataUnavailable, MarketError
from ..models.bar import Bar, BarValidator
from ..models.calendar import bucket_at
from ..models.history import HistoryResponse
from ..models.timeframe import Timeframe
from .planner import Window, plan_windows

__all__ = ["HistoryApi", "HistoryFetcher"]

log = logging.getLogger(__name__)

#: In-band messages IBKR's chart farm sends for a passing hiccup (third-party report: "retry
#: once"). Retried like "No data.", but raised if they persist: they do not mean "no bars".
_TRANSIENT = ("chart data is not available",)


class HistoryApi(Protocol):
    """What the fetcher needs of :class:`~backtrader_ibkr_cp.client.api.ApiClient`."""

    def history(
        self,
        conid: int,
        bar: str,
        period: str,
        start_time: datetime | None,
        outside_rth: bool = False,
    ) -> HistoryResponse: ...


def _describe(conid: int, window: Window) -> str:
    anchor = window.end.strftime("%Y%m%d-%H:%M:%S")
    return f"conid {conid}, bar={window.bar} period={window.period} startTime={anchor}"


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(f"{name} {value.isoformat()} is naive; pass a timezone-aware datetime")
    return value.astimezone(timezone.utc)


class HistoryFetcher:
    """Fetches bars for ``[start, end)`` with the fewest history requests.

    Args:
        api: an object with IBKR's ``history`` call (:class:`HistoryApi`), usually the
            :class:`~backtrader_ibkr_cp.client.api.ApiClient`.
        concurrency: windows requested at once (1-5; IBKR allows 5 concurrent history
            requests and throttles some users above 4).
        no_data_retries: how often a window answering "No data." is asked again before it
            counts as empty (a weekend or holiday).
    """

    def __init__(self, api: HistoryApi, concurrency: int = 4, *, no_data_retries: int = 1) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise ConfigError(f"concurrency {concurrency!r} is not an integer; use 1 to 5")
        if not 1 <= concurrency <= 5:
            raise ConfigError(
                f"concurrency {concurrency} is out of range; use 1 to 5 (IBKR allows at most 5 "
                "history requests at once)"
            )
        if no_data_retries < 0:
            raise ConfigError(f"no_data_retries {no_data_retries} is negative; use 0 or more")
        self.api = api
        self.concurrency = concurrency
        self.no_data_retries = no_data_retries

    def fetch(
        self,
        conid: int,
        timeframe: Timeframe | str,
        start: datetime,
        end: datetime,
        *,
        outside_rth: bool = False,
        validator: BarValidator | None = None,
        now: datetime | None = None,
    ) -> list[Bar]:
        """Validated bars starting in ``[start, end)``, sorted, one per timestamp.

        ``now`` (the gateway's clock, tz-aware) drops bars still forming at ``now`` (their
        bucket on the exchange calendar ends after ``now``: a daily bar is complete at the
        session close, a weekly one at Friday's) and skips windows after it.
        Errors: ConfigError for bad arguments (naive datetimes, start >= end); any
        gateway error other than "No data." cancels the remaining windows and is raised with
        the window in its message and ``context["window"]``.
        """
        tf = Timeframe.parse(timeframe)
        plan_windows(tf, start, end, outside_rth=outside_rth)  # validates the arguments
        start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
        if now is not None:
            now = _aware("now", now)
            if now <= start:
                return []
        planned_end = end if now is None else min(end, now)
        windows = plan_windows(tf, start, planned_end, outside_rth=outside_rth)
        batches = self._run(conid, windows, outside_rth)
        bars = [bar for batch in batches for bar in batch if start <= bar.timestamp < end]
        if now is not None:
            bars = [bar for bar in bars if _bar_end(bar, tf, outside_rth) <= now]
        return (validator or BarValidator()).validate(bars)

    def _run(self, conid: int, windows: Sequence[Window], outside_rth: bool) -> list[list[Bar]]:
        if len(windows) <= 1 or self.concurrency == 1:
            return [self._window(conid, window, outside_rth) for window in windows]
        with ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(windows)), thread_name_prefix="ibkr-history"
        ) as pool:
            futures = [pool.submit(self._window, conid, w, outside_rth) for w in windows]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                for future in pending:
                    future.cancel()
                raise _first_error(failed)
            return [future.result() for future in futures]

    def _window(self, conid: int, window: Window, outside_rth: bool) -> list[Bar]:
        attempts = 0
        while True:
            try:
                response = self.api.history(
                    conid,
                    bar=window.bar,
                    period=window.period,
                    start_time=window.end,
                    outside_rth=outside_rth,
                )
                log.debug("history %s: %d bars", _describe(conid, window), len(response.bars))
                return response.bars
            except DataUnavailable:
                if attempts >= self.no_data_retries:
                    log.info("history %s: no data; counted as empty", _describe(conid, window))
                    return []
                attempts += 1
            except ApiError as exc:
                message = (exc.gateway_message or "").lower()
                if attempts < self.no_data_retries and any(t in message for t in _TRANSIENT):
                    attempts += 1
                    continue
                _name(exc, conid, window)
                raise
            except MarketError as exc:
                _name(exc, conid, window)
                raise


def _name(error: MarketError, conid: int, window: Window) -> None:
    """Add the window to ``error``'s message and ``context`` (in place: type and cause kept)."""
    where = _describe(conid, window)
    if "window" not in error.context:
        error.context["window"] = where
        error.message = f"{error.message} (history window: {where})"
        error.args = (error.message, *error.args[1:])


def _first_error(failed: Sequence[Future[list[Bar]]]) -> BaseException:
    error = failed[0].exception()
    assert error is not None
    return error


def _bar_end(bar: Bar, timeframe: Timeframe, outside_rth: bool) -> datetime:
    """When ``bar`` is complete: the end of its bucket on the exchange calendar (a bar stamped
    outside every session falls back to its nominal length)."""
    bucket = bucket_at(bar.timestamp, timeframe, outside_rth=outside_rth)
    return bucket.end if bucket is not None else bar.timestamp + timeframe.duration
