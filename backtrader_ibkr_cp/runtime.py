"""The composition root: what the top layer (``bt``, ``cli``) gets its gateway client from.

One place builds a :class:`~backtrader_ibkr_cp.gateway.GatewayClient` for a store: with a
cassette installed first when one is given (recording through vcrpy, or replaying the stored
answers through an adapter on the client's own session, with no network and no pacing),
and with the installed plugins' hooks. The store, the CLI and the examples use it; the
layers below never import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .cassettes import Cassette, as_cassette, replay_pacing_limits, translate_cassette_error
from .cassettes.replay import replay_session
from .client.pacing import PacingLimits
from .gateway import GatewayClient
from .models import InvalidBar

__all__ = ["Connection", "open_connection"]


@dataclass
class Connection:
    """A client and the cassette it records into or replays from (if any)."""

    client: GatewayClient
    replaying: bool = False
    cassette: Cassette | None = field(default=None, repr=False)

    def close(self) -> None:
        """Close the client, then stop the cassette (a recording is written here)."""
        try:
            self.client.close()
        finally:
            cassette, self.cassette = self.cassette, None
            if cassette is not None:
                cassette.stop()


def open_connection(
    gateway_url: str,
    *,
    verify: bool | str | None = None,
    timeout: float | tuple[float, float] = 10.0,
    history_concurrency: int = 4,
    pacing: PacingLimits | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    cassette: str | os.PathLike[str] | Cassette | None = None,
    record_mode: str | None = None,
    on_invalid_bar: Callable[[InvalidBar], None] | None = None,
) -> Connection:
    """A :class:`Connection` for a store's parameters (not started, not authenticated).

    With ``cassette=`` a stored file is replayed (nothing reaches the network; a request
    that is not in it raises ``CassetteMiss``), or traffic is recorded into it
    (``record_mode``), the cassette being installed before the client sends anything.
    """
    chosen = as_cassette(cassette, record_mode)
    if pacing is None:
        pacing = PacingLimits(history_concurrency=history_concurrency)
    session = None
    replaying = False
    if chosen is not None and chosen.replays_stored_file():
        session, _adapter = replay_session(chosen.path)
        pacing = replay_pacing_limits()
        replaying = True
        chosen = None
    elif chosen is not None:
        chosen.start()  # record: before the client sends anything
    try:
        client = GatewayClient(
            gateway_url,
            verify=verify,
            timeout=timeout,
            pacing=pacing,
            session=session,
            cache_dir=Path(cache_dir) if cache_dir is not None else None,
            strict=strict,
            on_invalid_bar=on_invalid_bar,
        )
    except BaseException:
        if chosen is not None:
            chosen.stop()
        raise
    if chosen is not None:
        client.transport.add_error_mapper(translate_cassette_error)
    return Connection(client, replaying=replaying, cassette=chosen)
