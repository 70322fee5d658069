"""Record a run into a cassette: the helpers behind ``ibkr-cp record`` and
``scripts/record_cassette.py``.

A recording goes to a temporary file next to the target and replaces the target only when
the run succeeded, so a failed recording never leaves a half cassette behind. The run's
parameters are stored in the cassette's ``metadata`` (``symbols``, ``bar``, ``from``, ``to``,
``outside_rth``, ``recorded_with``) so a replay (``ibkr-cp demo``) can repeat exactly that run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import Timeframe
from .cassette import Cassette, CassetteNotFound
from .storage import CassettePersister, compact_json

__all__ = [
    "RecordResult",
    "RecordingRun",
    "record_client_run",
    "record_run",
    "run_metadata",
    "run_parameters",
    "update_metadata",
]


@dataclass(frozen=True)
class RecordResult:
    """What a recording produced: the file, its size in bytes, the interactions in it and
    the number of bars per symbol."""

    path: Path
    size_bytes: int
    interactions: int
    bars: dict[str, int] = field(default_factory=dict)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ConfigError(f"{name}={value!r} must be timezone-aware, e.g. tzinfo=timezone.utc")
    return value.astimezone(timezone.utc)


def run_metadata(
    symbols: Sequence[str],
    timeframe: Timeframe | str,
    start: datetime,
    end: datetime,
    *,
    outside_rth: bool = False,
    recorded_with: str = "client",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata describing a recorded historical run (JSON-compatible)."""
    from ..version import __version__

    meta: dict[str, Any] = {
        "generator": f"backtrader_ibkr_cp {__version__}",
        "symbols": [str(s) for s in symbols],
        "bar": Timeframe.parse(timeframe).bar,
        "from": _utc(start, "start").isoformat(),
        "to": _utc(end, "end").isoformat(),
        "outside_rth": bool(outside_rth),
        "recorded_with": recorded_with,
    }
    meta.update(extra or {})
    return meta


def run_parameters(
    metadata: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None
) -> tuple[list[str], Timeframe, datetime, datetime, bool]:
    """``(symbols, timeframe, start, end, outside_rth)`` from :func:`run_metadata`'s output.
    Raises ConfigError when the cassette (at ``path``, named in the message) does not
    describe its run."""
    where = str(path) if path is not None else "PATH"
    try:
        return (
            [str(s) for s in metadata["symbols"]],
            Timeframe.parse(str(metadata["bar"])),
            datetime.fromisoformat(str(metadata["from"])),
            datetime.fromisoformat(str(metadata["to"])),
            bool(metadata.get("outside_rth", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        why = (
            f"no {exc.args[0]!r} in its metadata"
            if isinstance(exc, KeyError)
            else f"{type(exc).__name__}: {exc}"
        )
        named = "" if path is None else f"{where} "
        raise ConfigError(
            f"the cassette {named}does not describe its run ({why}); use one recorded with "
            f"`ibkr-cp record --cassette {where} SYMBOL... --bar 5min --from YYYY-MM-DD --to "
            "YYYY-MM-DD`, which stores the symbols, bar size and dates"
        ) from exc


def update_metadata(path: str | os.PathLike[str], values: Mapping[str, Any]) -> None:
    """Merge ``values`` into a stored cassette's metadata (rewrites the file atomically)."""
    file = Path(path)
    loaded = CassettePersister.load_cassette(file, compact_json)
    requests, responses = loaded[0], loaded[1]
    metadata = dict(loaded[2]) if len(loaded) > 2 else {}
    metadata.update(json.loads(json.dumps(dict(values))))
    CassettePersister.save_cassette(
        file,
        {"requests": requests, "responses": responses, "metadata": metadata},
        compact_json,
    )


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.recording-{os.getpid()}{''.join(path.suffixes)}")


#: ``run(cassette_path, record_mode) -> {symbol: bars}``: performs the run so that its traffic
#: goes through a cassette at ``cassette_path`` in ``record_mode`` (it starts and stops it).
RecordingRun = Callable[[Path, str], dict[str, int]]


def record_run(
    path: str | os.PathLike[str],
    run: RecordingRun,
    *,
    metadata: Mapping[str, Any],
    append: bool = False,
) -> RecordResult:
    """Record ``run`` into ``path``: a fresh recording (``"once"`` into an empty temporary
    file), or with ``append`` the existing cassette plus the requests it lacks
    (``"new_episodes"``). The target is replaced only when ``run`` succeeds."""
    target = Path(path)
    tmp = _temporary(target)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    if append:
        if not target.is_file():
            raise CassetteNotFound(f"cannot append to {target}: it does not exist")
        shutil.copyfile(target, tmp)
    try:
        bars = run(tmp, "new_episodes" if append else "once")
        if not tmp.is_file():
            raise ConfigError(
                f"the run made no gateway request, so nothing was recorded into {target}"
            )
        update_metadata(tmp, metadata)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    loaded = CassettePersister.load_cassette(target, compact_json)
    return RecordResult(target, target.stat().st_size, len(loaded[0]), bars)


def record_client_run(
    path: str | os.PathLike[str],
    symbols: Sequence[str],
    timeframe: Timeframe | str,
    start: datetime,
    end: datetime,
    *,
    gateway_url: str,
    verify: bool | str | None = None,
    outside_rth: bool = False,
    append: bool = False,
    metadata: Mapping[str, Any] | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> RecordResult:
    """Record ``GatewayClient.fetch_bars`` for each symbol (authenticate, resolve, history)
    against the gateway at ``gateway_url``."""
    from ..gateway import GatewayClient

    tf = Timeframe.parse(timeframe)
    meta = run_metadata(
        symbols, tf, start, end, outside_rth=outside_rth, recorded_with="client", extra=metadata
    )

    def run(cassette_path: Path, mode: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        with Cassette(cassette_path, mode):
            client = GatewayClient(gateway_url, verify=verify, **dict(client_kwargs or {}))
            try:
                client.authenticate()
                for symbol in symbols:
                    bars = client.fetch_bars(symbol, tf, start, end, outside_rth=outside_rth)
                    counts[symbol] = len(bars)
            finally:
                client.close()
        return counts

    return record_run(path, run, metadata=meta, append=append)
