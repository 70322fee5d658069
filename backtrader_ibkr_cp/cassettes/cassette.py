"""``Cassette``: record gateway traffic once, replay it offline (vcrpy underneath).

Record modes (vcrpy's, see :data:`RECORD_MODES`):

- ``"none"`` (default): replay only. Nothing touches the network. The cassette must exist
  (:class:`CassetteNotFound` at :meth:`Cassette.start` otherwise), and a request that is not in
  it raises :class:`CassetteMiss` naming the request and how to re-record.
- ``"once"``: record when the file does not exist yet, otherwise behave like ``"none"``.
- ``"new_episodes"``: replay what is recorded, record (and append) what is not.
- ``"all"``: record everything again, replacing matching interactions.

Matching ignores scheme, host and port (see :mod:`.matching`). Session endpoints
(:data:`~.matching.REPEATABLE_PATHS`) replay any number of times; everything else (history
windows, snapshot polls) replays in recorded order, each recorded answer once.

Secrets are scrubbed before anything is kept in memory or written (see :mod:`.scrub`).
Concurrent requests (the history fetch pool, several feeds, the keep-alive thread) are
recorded and replayed safely (see :mod:`.threadsafe`).

vcrpy patches ``http.client``/urllib3 process-wide, so at most one cassette is active at a time;
start it BEFORE the ``GatewayClient`` makes its first request (connections opened before the
cassette started are real sockets and would bypass it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import vcr
import vcr.cassette

from ..errors import ConfigError, MarketError
from .errors import (
    CassetteCorrupt,
    CassetteError,
    CassetteMiss,
    CassetteNotFound,
    translate_cassette_error,
)
from .matching import (
    MATCH_ON,
    REPEATABLE_PATHS,
    body_matcher,
    is_repeatable,
    path_matcher,
    query_matcher,
)
from .scrub import Scrubber
from .storage import SERIALIZER_NAME, CassettePersister, compact_json
from .threadsafe import ThreadSafety

__all__ = [
    "RECORD_MODES",
    "Cassette",
    "CassetteCorrupt",
    "CassetteError",
    "CassetteMiss",
    "CassetteNotFound",
    "RecordMode",
    "active_cassette",
    "read_metadata",
    "translate_cassette_error",
]

RecordMode = Literal["none", "once", "new_episodes", "all"]
#: Valid record modes, in the order messages list them.
RECORD_MODES: tuple[str, ...] = ("none", "once", "new_episodes", "all")

_active_lock = threading.Lock()
_active: Cassette | None = None


def active_cassette() -> Cassette | None:
    """The cassette currently started in this process, if any."""
    return _active


class _VcrCassette(vcr.cassette.Cassette):  # type: ignore[misc]
    """vcrpy's cassette with per-path playback repeats and a lock for concurrent fetches."""

    repeatable: tuple[str, ...] = REPEATABLE_PATHS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()

    def _repeat_index(self, request: Any) -> int | None:
        """The last matching interaction for a repeatable request on replay, else None."""
        if not self.rewound or not is_repeatable(request.path, self.repeatable):
            return None
        last = None
        for index, _response in self._responses(request):
            last = index
        return last

    def __contains__(self, request: Any) -> bool:
        with self._lock:
            if super().__contains__(request):
                return True
            return self._repeat_index(request) is not None

    def can_play_response_for(self, request: Any) -> bool:
        with self._lock:
            return bool(super().can_play_response_for(request))

    def play_response(self, request: Any) -> Any:
        with self._lock:
            for index, response in self._responses(request):
                if self.play_counts[index] == 0:
                    if index < self._loaded_count:
                        self._played_interactions.append((self.data[index][0], response))
                    self.play_counts[index] += 1
                    return response
            index = self._repeat_index(request)
            if index is not None:
                self.play_counts[index] += 1
                return self.data[index][1]
            return super().play_response(request)

    def append(self, request: Any, response: Any) -> None:
        with self._lock:
            super().append(request, response)


def _validate_mode(record_mode: str) -> RecordMode:
    if record_mode not in RECORD_MODES:
        raise ConfigError(
            f"record_mode {record_mode!r} is not valid; use one of "
            f"{', '.join(repr(m) for m in RECORD_MODES)} ('none' replays only)"
        )
    return record_mode  # type: ignore[return-value]


class Cassette:
    """Record or replay gateway HTTP traffic (a context manager; also :meth:`start`/:meth:`stop`).

    Args:
        path: the cassette file (``.json``, or ``.json.gz`` to gzip it).
        record_mode: ``"none"`` (default, replay only), ``"once"``, ``"new_episodes"``, ``"all"``.
        repeatable_paths: endpoints that may replay any number of times (default: the session
            endpoints ``/tickle``, ``/iserver/auth/status``, ``/iserver/accounts``,
            ``/sso/validate``).
        metadata: key/values stored in the cassette when it is (re)recorded, e.g. what run it
            holds; read them back with :attr:`metadata`.
        secrets: extra values to scrub wherever they appear (e.g. a known account alias).

    Raises ConfigError for an unknown record mode; :meth:`start` raises
    :class:`CassetteNotFound` when replaying a file that does not exist and
    :class:`CassetteCorrupt` when the file is not a readable cassette (empty, truncated, ``{}``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        record_mode: str = "none",
        *,
        repeatable_paths: tuple[str, ...] = REPEATABLE_PATHS,
        metadata: Mapping[str, Any] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.path = Path(path)
        self.record_mode: RecordMode = _validate_mode(record_mode)
        self.repeatable_paths = tuple(repeatable_paths)
        self._new_metadata = dict(metadata or {})
        self.scrubber = Scrubber(secrets)
        self._context: Any = None
        self._vcr_cassette: _VcrCassette | None = None
        self._thread_safety = ThreadSafety()

    # -- lifecycle -----------------------------------------------------------------------

    def _vcr(self) -> vcr.VCR:
        config = vcr.VCR(
            serializer=SERIALIZER_NAME,
            match_on=MATCH_ON,
            record_mode=self.record_mode,
            before_record_request=self.scrubber.request,
            before_record_response=self.scrubber.response,
            before_save_interaction=self.scrubber.saved_interaction,
            decode_compressed_response=True,
        )
        config.register_serializer(SERIALIZER_NAME, compact_json)
        config.register_persister(CassettePersister)
        config.register_matcher("ibkr_path", path_matcher)
        config.register_matcher("ibkr_query", query_matcher)
        config.register_matcher("ibkr_body", body_matcher)
        return config

    def start(self) -> Cassette:
        """Install the cassette (patches HTTP process-wide). Returns self."""
        global _active
        if self.record_mode == "none" and not self.path.is_file():
            raise CassetteNotFound(
                f"cassette {self.path} does not exist; record it first: `ibkr-cp record "
                f"--cassette {self.path} SYMBOL... --bar 5min --from YYYY-MM-DD --to YYYY-MM-DD` "
                "against a gateway (or the simulator), or pass record_mode='once'",
                cassette=str(self.path),
            )
        with _active_lock:
            if _active is not None:
                raise ConfigError(
                    f"cassette {_active.path} is already active; stop it before starting "
                    f"{self.path} (vcrpy patches HTTP process-wide, one cassette at a time)"
                )
            repeatable = self.repeatable_paths
            cls: Any = type("_Cassette", (_VcrCassette,), {"repeatable": repeatable})
            config = self._vcr()
            getter = _args_getter(config, str(self.path))
            context = cls.use_arg_getter(getter)
            self._vcr_cassette = context.__enter__()  # loads the file: may raise CassetteCorrupt
            self._context = context
            self._thread_safety.install()
            _active = self
        if self._new_metadata and not self._vcr_cassette.write_protected:
            self._vcr_cassette._metadata.update(self._new_metadata)
        return self

    def stop(self) -> None:
        """Uninstall the cassette and, when recording, write it (scrubbed). Idempotent."""
        global _active
        with _active_lock:
            context, self._context = self._context, None
            if context is None:
                return
            try:
                self._thread_safety.remove()
                context.__exit__(None, None, None)
            finally:
                self._vcr_cassette = None
                _active = None

    def __enter__(self) -> Cassette:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc is not None and not isinstance(exc, MarketError):
            mapped = translate_cassette_error(exc)
            if mapped is not None:
                raise mapped from exc

    def replays_stored_file(self) -> bool:
        """True when this cassette only replays an existing file (``"none"``, or ``"once"``
        with the file already recorded): it can then be served without vcrpy (see
        :mod:`.replay`)."""
        return self.path.is_file() and self.record_mode in ("none", "once")

    # -- observation ---------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._vcr_cassette is not None

    @property
    def recording(self) -> bool:
        """True while started in a mode that may write new interactions."""
        c = self._vcr_cassette
        return c is not None and not c.write_protected

    @property
    def interactions(self) -> int:
        """Interactions held now (recorded + loaded); 0 when not started."""
        c = self._vcr_cassette
        return len(c) if c is not None else 0

    @property
    def play_count(self) -> int:
        """Answers replayed from the file since :meth:`start`."""
        c = self._vcr_cassette
        return int(c.play_count) if c is not None else 0

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata stored in the cassette (while started), else read from the file."""
        c = self._vcr_cassette
        if c is not None:
            return dict(c._metadata)
        return read_metadata(self.path)

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, record_mode={self.record_mode!r})"


def _args_getter(config: vcr.VCR, path: str) -> Any:
    def getter() -> dict[str, Any]:
        merged: dict[str, Any] = config.get_merged_config(path=path)
        return merged

    return getter


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metadata`` object of a stored cassette ({} when it has none).

    Raises CassetteNotFound when the file does not exist, CassetteCorrupt when it is not a
    readable cassette.
    """
    file = Path(path)
    if not file.is_file():
        raise CassetteNotFound(f"cassette {file} does not exist", cassette=str(file))
    result = CassettePersister.load_cassette(file, compact_json)
    if len(result) > 2 and isinstance(result[2], dict):
        return dict(result[2])
    return {}
