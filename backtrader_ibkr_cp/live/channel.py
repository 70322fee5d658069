"""A bounded FIFO between two threads whose waits go through a :class:`~..timing.Clock` and
end when a :class:`~..timing.CancelToken` is cancelled.

Two policies when full: :meth:`Channel.put` waits for room (back-pressure: a backfill never
outruns the feed that drains it), :meth:`Channel.offer` drops the oldest item (market data: the
newest snapshot matters, and the engine settles every bar from history anyway).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Generic, TypeVar

from ..timing import SYSTEM_CLOCK, Cancelled, CancelToken, Clock, Signal

__all__ = ["Channel"]

T = TypeVar("T")


class Channel(Generic[T]):
    """A bounded FIFO (``maxsize`` items) for one or more producers and one consumer."""

    def __init__(self, maxsize: int, *, clock: Clock = SYSTEM_CLOCK) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._clock = clock
        self._lock = threading.Lock()
        self._items: deque[T] = deque()
        #: Set while the channel holds an item.
        self.readable = Signal()
        self._writable = Signal()
        self._writable.set()
        #: Items dropped by :meth:`offer` because the channel was full.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put(self, item: T, cancel: CancelToken | None = None) -> None:
        """Append ``item``, waiting for room; raises :class:`Cancelled` if ``cancel`` is
        cancelled meanwhile."""
        while True:
            with self._lock:
                if len(self._items) < self.maxsize:
                    self._append(item)
                    return
                self._writable.clear()
            if cancel is not None and cancel.cancelled:
                raise Cancelled(f"put was cancelled ({cancel.reason})")
            self._clock.wait(math.inf, self._writable, cancel)

    def offer(self, item: T) -> None:
        """Append ``item`` at once, dropping the oldest item when full."""
        with self._lock:
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._append(item)

    def _append(self, item: T) -> None:
        self._items.append(item)
        self.readable.set()
        if len(self._items) >= self.maxsize:
            self._writable.clear()

    def get(self, timeout: float = 0.0, cancel: CancelToken | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout`` seconds (``math.inf``: until one comes
        or ``cancel`` is cancelled); None when there is none."""
        item = self._pop()
        if item is not None or timeout <= 0:
            return item
        deadline = self._clock.now() + timeout
        while item is None:
            left = deadline - self._clock.now()
            if left <= 0 or (cancel is not None and cancel.cancelled):
                return None
            self._clock.wait(left, self.readable, cancel)
            item = self._pop()
        return item

    def drain(self) -> list[T]:
        """Every item, oldest first (none: an empty list)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self.readable.clear()
            self._writable.set()
        return items

    def _pop(self) -> T | None:
        with self._lock:
            if not self._items:
                self.readable.clear()
                return None
            item = self._items.popleft()
            if not self._items:
                self.readable.clear()
            self._writable.set()
            return item
