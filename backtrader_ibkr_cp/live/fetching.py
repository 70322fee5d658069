"""History requests of a live stream: healing of invalid bars, retries, and what counts as a
lost connection. Runs on the stream's thread; waits end early when the stream is stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ..errors import (
    AuthenticationError,
    ConfigError,
    DataIntegrityError,
    DataUnavailable,
    MarketError,
)
from ..models import Bar, BarValidator, InvalidBar, Timeframe
from ..models.calendar import bucket_at, next_bucket, next_session_start

__all__ = [
    "BarFetcher",
    "ConnectionLost",
    "HistorySource",
    "InvalidBarStop",
    "StreamClient",
    "StreamStopped",
    "gave_up",
]

log = logging.getLogger(__name__)

#: History requests made when a fetch dropped invalid bars (the first included).
HEAL_ATTEMPTS = 3
#: Fetches of a span that must hold complete bars but came back empty (the gateway's
#: "No data." is sometimes transient) before the span is given up, with a store message.
EMPTY_ATTEMPTS = 3
#: Failed history requests (each already retried by the client) before a backfill gives up
#: (historical) or calls the connection lost (live).
FETCH_ATTEMPTS = 3
#: Longest wait, in seconds, between retries of a failing history request.
MAX_RETRY_WAIT = 30.0


class HistorySource(Protocol):
    """What a stream needs of :class:`~backtrader_ibkr_cp.history.fetch.HistoryFetcher`."""

    def fetch(
        self,
        conid: int,
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        outside_rth: bool = False,
        validator: BarValidator | None = None,
        now: datetime | None = None,
    ) -> list[Bar]: ...


class StreamClient(Protocol):
    """What a stream needs of :class:`~backtrader_ibkr_cp.gateway.GatewayClient`."""

    @property
    def history(self) -> HistorySource: ...

    @property
    def strict(self) -> bool: ...

    @property
    def on_invalid_bar(self) -> Callable[[InvalidBar], None] | None: ...

    def server_time(self) -> datetime: ...

    def validate_session(self) -> bool: ...

    def reconnect(self) -> bool: ...


class InvalidBarStop(DataIntegrityError):
    """strict=True and the gateway sent an invalid bar for the requested span: the feed stops."""


class StreamStopped(Exception):
    """Raised inside a stream thread once the stream was asked to stop."""


class ConnectionLost(Exception):
    """Raised inside a stream thread when the connection must be re-established."""

    def __init__(self, reason: str, error: MarketError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


def gave_up(label: str, attempts: int, error: MarketError | None) -> MarketError:
    """The error that ends a stream after ``attempts`` failed reconnections."""
    cause = f" (last error: {error})" if error is not None else ""
    if isinstance(error, AuthenticationError):
        return AuthenticationError(
            f"{label}: gave up reconnecting after {attempts} attempt(s){cause}; log in to the "
            "gateway again and restart, or raise the store's reconnect count",
            endpoint=error.endpoint,
            status=error.status,
        )
    return MarketError(
        f"{label}: gave up reconnecting after {attempts} attempt(s){cause}; check that the "
        "gateway is running and logged in, or raise the store's reconnect count"
    )


class BarFetcher:
    """Completed, validated bars of one contract and bar size from the gateway's history.

    Args:
        client: the GatewayClient.
        conid: the contract.
        timeframe: the bar size.
        outside_rth: include pre/post-market bars.
        stop: the stream's stop event (waits end when it is set).
        notify: receives human messages for the store.
        label: names the feed in messages.
    """

    def __init__(
        self,
        client: StreamClient,
        conid: int,
        timeframe: Timeframe,
        *,
        outside_rth: bool,
        stop: threading.Event,
        notify: Callable[[str], None],
        label: str,
    ) -> None:
        self.client = client
        self.conid = conid
        self.timeframe = timeframe
        self.outside_rth = outside_rth
        self._stop = stop
        self._notify = notify
        self._label = label

    def fatal(self, error: MarketError) -> bool:
        """True for errors no retry can fix (bad arguments; invalid bars in strict mode). A
        malformed answer is a DataIntegrityError too, but a transient one: not fatal."""
        return isinstance(error, (ConfigError, InvalidBarStop))

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raise StreamStopped if the stream is stopped meanwhile."""
        if self._stop.wait(max(0.0, seconds)):
            raise StreamStopped()

    def fetch(self, start: datetime, end: datetime, now: datetime) -> list[Bar]:
        """Bars starting in ``[start, end)`` complete at gateway time ``now``, sorted, one per
        timestamp. When the validator dropped invalid bars (reported to the store through
        the client's ``on_invalid_bar``) the span is asked again, up to
        :data:`HEAL_ATTEMPTS` times: a corrupted answer usually heals on the next request.
        With ``strict`` an invalid bar raises :class:`InvalidBarStop` instead. "No data."
        counts as no bars."""
        if min(end, now) <= start:
            return []
        merged: dict[datetime, Bar] = {}
        for _ in range(HEAL_ATTEMPTS):
            rejected: list[InvalidBar] = []
            # Never strict here: a strict validator raises a plain DataIntegrityError, which
            # cannot be told from a malformed (transient) answer.
            validator = BarValidator(on_invalid=rejected.append)
            try:
                # now=None: completeness is judged here, on the session calendar (a daily bar
                # is complete at the close, not 24 hours after its start).
                bars = self.client.history.fetch(
                    self.conid,
                    self.timeframe,
                    start,
                    min(end, now),
                    outside_rth=self.outside_rth,
                    validator=validator,
                    now=None,
                )
            except DataUnavailable as exc:
                log.info("%s: no history for %s..%s: %s", self._label, start, end, exc)
                bars = []
            self._rejected(rejected)
            merged.update((bar.timestamp, bar) for bar in bars if self._complete(bar, now))
            if not rejected:
                break
        return [merged[t] for t in sorted(merged)]

    def _rejected(self, rejected: list[InvalidBar]) -> None:
        """Stop on the first invalid bar (strict), or report each to the store."""
        if rejected and self.client.strict:
            first = rejected[0]
            raise InvalidBarStop(
                f"invalid bar from the gateway: {first.bar.describe()} ({first.reason}); the "
                "feed stopped because strict=True: pass strict=False to drop invalid bars "
                "instead (each is reported via notify_store and its span asked again), or "
                "check this contract's data with the gateway",
                endpoint="/iserver/marketdata/history",
                conid=self.conid,
            )
        report = self.client.on_invalid_bar
        if report is not None:
            for invalid in rejected:
                report(invalid)

    def expects_bars(self, start: datetime, end: datetime, now: datetime) -> bool:
        """True when ``[start, end)`` holds a whole bar interval of the exchange calendar that
        is complete at ``now`` (so an empty answer for it is suspicious)."""
        first = bucket_at(start, self.timeframe, outside_rth=self.outside_rth)
        if first is None:
            opens = next_session_start(start, outside_rth=self.outside_rth)
            first = bucket_at(opens, self.timeframe, outside_rth=self.outside_rth)
            assert first is not None
        elif first.start < start:
            first = next_bucket(first, self.timeframe, outside_rth=self.outside_rth)
        return first.start < end and first.end <= now

    def _complete(self, bar: Bar, now: datetime) -> bool:
        """True when ``bar``'s interval has ended at gateway time ``now``."""
        bucket = bucket_at(bar.timestamp, self.timeframe, outside_rth=self.outside_rth)
        end = bucket.end if bucket is not None else bar.timestamp + self.timeframe.duration
        return end <= now

    def fetch_retrying(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        *,
        historical: bool,
        settles: bool = False,
    ) -> list[Bar]:
        """:meth:`fetch`, retrying transient failures with back-off (0.5 s doubling).

        After :data:`FETCH_ATTEMPTS` failures, or on a lost session, raises the error
        (``historical``) or ConnectionLost (live: the stream reconnects). Fatal errors
        (:meth:`fatal`) are raised at once.

        ``settles``: the answer is final for the span (a historical run, or a first backfill,
        after which the stream moves on to live bars). Then an empty answer for a span that
        must hold complete bars (:meth:`expects_bars`) is asked again, :data:`EMPTY_ATTEMPTS`
        times in all, and given up with a store message. (Otherwise the stream's live loop
        asks for every interval it has not settled anyway.)
        """
        failures = 0
        empty = 0
        while True:
            if self._stop.is_set():
                raise StreamStopped()
            try:
                bars = self.fetch(start, end, now)
            except AuthenticationError as exc:
                if historical:
                    raise
                raise ConnectionLost("the gateway session was lost", exc) from exc
            except MarketError as exc:
                if self.fatal(exc):
                    raise
                failures += 1
                if failures >= FETCH_ATTEMPTS:
                    if historical:
                        raise
                    raise ConnectionLost("history requests keep failing", exc) from exc
                wait = min(0.5 * 2.0 ** (failures - 1), MAX_RETRY_WAIT)
                self._notify(
                    f"{self._label}: history request failed, retrying in {wait:.1f} s: {exc}"
                )
                self.sleep(wait)
                continue
            if bars or not settles or not self.expects_bars(start, end, now):
                return bars
            empty += 1
            span = f"{start.isoformat()}..{min(end, now).isoformat()}"
            if empty >= EMPTY_ATTEMPTS:
                self._notify(
                    f"{self._label}: the gateway sent no bars for {span} after {empty} "
                    "requests; nothing is delivered for that span (a holiday, no trades, or "
                    "no history for this contract; if bars should exist, check the gateway "
                    "and backfill again)"
                )
                return bars
            wait = min(0.5 * 2.0 ** (empty - 1), MAX_RETRY_WAIT)
            log.info("%s: no bars for %s; asking again in %.1f s", self._label, span, wait)
            self.sleep(wait)
