"""What the store and the client call to use a cassette (kept here so they stay small).

``IBKRCPStore._make_client()``::

    self._cassette = as_cassette(self.p.cassette, self.p.record_mode)
    pacing = PacingLimits(history_concurrency=self.p.history_concurrency)
    if self._cassette is not None:
        self._cassette.start()                  # BEFORE the GatewayClient sends anything
        if not self._cassette.recording:
            pacing = replay_pacing_limits()     # replay: nothing reaches IBKR
    return GatewayClient(..., pacing=pacing)

``IBKRCPStore.connect()``: skip ``client.start()`` (the keep-alive thread) when
``self._cassette is not None and not self._cassette.recording``: a replay has no session to
keep alive, and a ``/tickle`` the recording never made would be a CassetteMiss.

``IBKRCPStore.stop()``, after ``client.close()``::

    cassette, self._cassette = self._cassette, None
    if cassette is not None:
        cassette.stop()                         # writes the file when recording
"""

from __future__ import annotations

import os

from ..client.pacing import PacingLimits
from ..errors import ConfigError
from .cassette import RECORD_MODES, Cassette

__all__ = ["as_cassette", "replay_pacing_limits"]


def as_cassette(
    cassette: str | os.PathLike[str] | Cassette | None, record_mode: str | None = None
) -> Cassette | None:
    """A :class:`Cassette` for a store's ``cassette=`` argument: None stays None, a Cassette
    is used as given (``record_mode`` must then be None or equal its mode), a path becomes
    ``Cassette(path, record_mode or "none")``. Raises ConfigError for anything else."""
    if cassette is None:
        if record_mode is not None:
            raise ConfigError(
                f"record_mode={record_mode!r} needs a cassette: pass cassette='path.json'"
            )
        return None
    if isinstance(cassette, Cassette):
        if record_mode is not None and record_mode != cassette.record_mode:
            raise ConfigError(
                f"record_mode={record_mode!r} conflicts with the given Cassette's "
                f"{cassette.record_mode!r}; pass one of them"
            )
        return cassette
    if isinstance(cassette, (str, os.PathLike)):
        return Cassette(cassette, record_mode or "none")
    raise ConfigError(
        f"cassette={cassette!r} is not a path or a Cassette; use e.g. "
        f"cassette='cassettes/aapl.json' (record modes: {', '.join(RECORD_MODES)})"
    )


def replay_pacing_limits() -> PacingLimits:
    """Pacing for a replaying cassette: nothing reaches IBKR, so nothing needs pacing (a
    backtest from a cassette should cost no more time than reading the bars). History
    windows are fetched one at a time: with no network latency to overlap, a thread pool
    only adds GIL contention (measured: serial replay of 66 windows is ~25% faster)."""
    huge = 1e9
    return PacingLimits(
        total_per_second=huge,
        snapshot_per_second=huge,
        history_concurrency=1,
        tickle_per_second=huge,
        sso_validate_per_minute=huge,
        margin=0.0,
    )
