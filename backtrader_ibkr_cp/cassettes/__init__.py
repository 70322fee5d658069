"""Record gateway traffic once and replay it offline: vcrpy cassettes with secret scrubbing.

::

    from backtrader_ibkr_cp.cassettes import Cassette

    with Cassette("cassettes/aapl.json", record_mode="once"):   # records (first run)
        bars = GatewayClient(sim.url).fetch_bars("AAPL", "5min", start, end)
    with Cassette("cassettes/aapl.json"):                       # replays, no network
        bars = GatewayClient("https://localhost:5000").fetch_bars("AAPL", "5min", start, end)

See :mod:`.cassette` for record modes and matching, :mod:`.scrub` for what is scrubbed,
:mod:`.storage` for the file format and :mod:`.recording` for the helpers the CLI uses.
"""

from __future__ import annotations

from .cassette import (
    RECORD_MODES,
    Cassette,
    CassetteCorrupt,
    CassetteError,
    CassetteMiss,
    CassetteNotFound,
    RecordMode,
    active_cassette,
    read_metadata,
    translate_cassette_error,
)
from .matching import REPEATABLE_PATHS
from .scrub import ACCOUNT_PLACEHOLDER, SECRET_PLACEHOLDER, Scrubber
from .wiring import as_cassette, replay_pacing_limits

__all__ = [
    "ACCOUNT_PLACEHOLDER",
    "RECORD_MODES",
    "REPEATABLE_PATHS",
    "SECRET_PLACEHOLDER",
    "Cassette",
    "CassetteCorrupt",
    "CassetteError",
    "CassetteMiss",
    "CassetteNotFound",
    "RecordMode",
    "Scrubber",
    "active_cassette",
    "as_cassette",
    "read_metadata",
    "replay_pacing_limits",
    "translate_cassette_error",
]
