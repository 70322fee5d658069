"""When the WebSocket's keeper must act: echo, ``tic``, re-subscription, silence. Pure.

A :class:`KeepAlive` holds the times of one connection (monotonic seconds of the socket's
clock); :meth:`KeepAlive.due` says what is due at ``now`` and moves the timers on, and
:meth:`KeepAlive.next_at` when to look again. It does no I/O and never waits: the keeper
thread asks it, sends, and waits on the clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Due", "KeepAlive"]


@dataclass(frozen=True)
class Due:
    """What to do now: send ``ech+hb`` (``echo``), send ``tic``, re-subscribe everything
    (``refresh``), or cut the socket (``silent``: seconds without any message, else None)."""

    echo: bool = False
    tic: bool = False
    refresh: bool = False
    silent: float | None = None


class KeepAlive:
    """The timers of one connection.

    Args:
        echo: seconds between echoes.
        tic: seconds between ``tic`` messages.
        silence: seconds without a message that mean the socket is dead (None: never).
        refresh: seconds between re-subscriptions once logged in (None: never).
        now: the connection's start.

    Not thread-safe: the socket calls it under its lock.
    """

    def __init__(
        self, echo: float, tic: float, silence: float | None, refresh: float | None, now: float
    ) -> None:
        self.echo_every = echo
        self.tic_every = tic
        self.silence = silence
        self.refresh_every = refresh
        self.last_seen = now
        self._echo = now + echo
        self._tic = now + tic
        self._refresh = math.inf
        self._cut = False

    def seen(self, now: float) -> None:
        """A message arrived at ``now``."""
        self.last_seen = now

    def logged_in(self, now: float) -> None:
        """Everything was (re)subscribed at ``now``: the next refresh counts from here."""
        if self.refresh_every is not None:
            self._refresh = now + self.refresh_every

    def due(self, now: float) -> Due:
        """What is due at ``now`` (each action once: its timer moves on). A silent socket is
        reported once; after that only the caller's cut ends it."""
        quiet = now - self.last_seen
        silent = None
        if self.silence is not None and quiet >= self.silence and not self._cut:
            self._cut = True
            silent = quiet
        echo, tic, refresh = now >= self._echo, now >= self._tic, now >= self._refresh
        if echo:
            self._echo = now + self.echo_every
        if tic:
            self._tic = now + self.tic_every
        if refresh:
            assert self.refresh_every is not None
            self._refresh = now + self.refresh_every
        return Due(echo, tic, refresh, silent)

    def next_at(self) -> float:
        """When something is next due (``math.inf``: nothing)."""
        due = min(self._echo, self._tic, self._refresh)
        if self.silence is not None and not self._cut:
            due = min(due, self.last_seen + self.silence)
        return due
