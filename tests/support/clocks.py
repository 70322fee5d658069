"""Driving a :class:`~backtrader_ibkr_cp.timing.FakeClock` from a test."""

from __future__ import annotations

from backtrader_ibkr_cp.timing import FakeClock

#: Real seconds a test waits for a thread to reach its next wait before failing.
SETTLE_TIMEOUT = 10.0


def tick(clock: FakeClock, seconds: float, sleepers: int = 1) -> float:
    """Move ``clock`` forward ``seconds`` and return once ``sleepers`` waits are in progress
    again: the threads woken did their work and wait for their next turn. Returns the new
    time. (A woken wait stops counting as a sleeper when it is woken, so the count only comes
    back when the thread waits again.)"""
    now = clock.advance(seconds)
    clock.wait_for_sleepers(sleepers, timeout=SETTLE_TIMEOUT)
    return now
