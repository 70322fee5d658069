"""Replay a stored cassette through a ``requests`` transport adapter: no vcrpy patching.

A replay needs none of vcrpy's machinery: nothing is recorded, nothing is scrubbed again (the
file was scrubbed when written), and no process-wide patch of ``http.client`` is needed when
the client's own ``requests.Session`` can be handed an adapter (injection over patching).
:class:`ReplayAdapter` loads the file once, indexes every recorded answer by the request's
method, path, sorted query and JSON body (the same matching rules as :mod:`.matching`), and
answers each request in O(1):

- answers for one request are replayed in recorded order, each once (history windows and
  snapshot polls keep their sequence);
- the session endpoints (:data:`~.matching.REPEATABLE_PATHS`) repeat their last answer;
- anything else raises :class:`~.errors.CassetteMiss` naming the request.

Thread-safe: the history fetch pool and several feeds share one adapter.
"""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .errors import CassetteMiss, CassetteNotFound
from .matching import REPEATABLE_PATHS, describe_request, is_repeatable, normalize_path
from .storage import body_text, read_cassette_dict

__all__ = ["ReplayAdapter", "replay_session"]

Key = tuple[str, str, tuple[tuple[str, str], ...], str]


def _body_key(body: Any) -> str:
    """A canonical text for a request body: sorted JSON when it is JSON, else the text."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    if not text.strip():
        return ""
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return text


def _key(method: str, uri: str, body: Any) -> Key:
    parts = urlsplit(uri)
    query = tuple(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return (method.upper(), normalize_path(parts.path), query, _body_key(body))


class ReplayAdapter(BaseAdapter):
    """Answers a ``requests.Session``'s requests from the cassette at ``path``.

    Raises :class:`CassetteNotFound` when the file does not exist and
    :class:`~backtrader_ibkr_cp.errors.CassetteCorrupt` when it is not a readable cassette.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, repeatable_paths: tuple[str, ...] = REPEATABLE_PATHS
    ) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise CassetteNotFound(
                f"cassette {self.path} does not exist; record it first with `ibkr-cp record "
                f"--cassette {self.path} ...` or pass record_mode='once'",
                cassette=str(self.path),
            )
        self.repeatable_paths = repeatable_paths
        self._answers: dict[Key, list[Mapping[str, Any]]] = {}
        # Bodies stay as stored (parsed JSON) and are serialised only when a request needs
        # them: a run usually replays part of a cassette.
        for interaction in read_cassette_dict(self.path, unpack=False).get("interactions", []):
            request = interaction["request"]
            key = _key(str(request["method"]), str(request["uri"]), body_text(request.get("body")))
            self._answers.setdefault(key, []).append(interaction["response"])
        self._played: dict[Key, int] = {}
        self._lock = threading.Lock()
        self.play_count = 0

    @property
    def interactions(self) -> int:
        return sum(len(v) for v in self._answers.values())

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        method = str(request.method or "GET")
        uri = str(request.url or "")
        key = _key(method, uri, request.body)
        with self._lock:
            answers = self._answers.get(key, [])
            played = self._played.get(key, 0)
            if played < len(answers):
                answer = answers[played]
            elif answers and is_repeatable(key[1], self.repeatable_paths):
                answer = answers[-1]
            else:
                raise self._miss(method, uri, "already_played" if answers else "no_match")
            self._played[key] = played + 1
            self.play_count += 1
        return _response(request, answer)

    def close(self) -> None:
        """Nothing to release (no sockets)."""

    def _miss(self, method: str, uri: str, reason: str) -> CassetteMiss:
        described = describe_request(method, uri)
        path, _, query = described.split(" ", 1)[1].partition("?")
        why = (
            "was recorded fewer times than this run made it"
            if reason == "already_played"
            else "is not in the cassette"
        )
        return CassetteMiss(
            f"request {described} {why} {self.path}; the run differs from the recorded one "
            f"(symbols, dates, bar size, outside-RTH): re-record it with `ibkr-cp record "
            f"--cassette {self.path} SYMBOL... --bar ... --from ... --to ...` or "
            "record_mode='new_episodes'",
            method=method,
            path=path,
            query=query,
            cassette_path=str(self.path),
            reason=reason,
        )


def _response(request: requests.PreparedRequest, answer: Mapping[str, Any]) -> requests.Response:
    status = answer.get("status", {})
    content = body_text(answer.get("body")).encode("utf-8")
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, values in dict(answer.get("headers", {})).items():
        headers[name] = ", ".join(values) if isinstance(values, list) else str(values)
    headers["Content-Length"] = str(len(content))
    response = requests.Response()
    response.status_code = int(status.get("code", 200))
    response.reason = str(status.get("message", ""))
    response.headers = headers
    response._content = content
    response.raw = io.BytesIO(content)
    response.url = str(request.url or "")
    response.request = request
    response.encoding = requests.utils.get_encoding_from_headers(headers)
    return response


def replay_session(path: str | os.PathLike[str]) -> tuple[requests.Session, ReplayAdapter]:
    """A ``requests.Session`` whose every request is answered by a :class:`ReplayAdapter`."""
    adapter = ReplayAdapter(path)
    session = requests.Session()
    session.trust_env = False
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session, adapter
