"""How a cassette is stored: compact JSON with bodies kept as parsed JSON, optionally gzipped.

vcrpy's own JSON serializer stores each body as one escaped string and indents everything,
which makes a months-of-bars cassette large and unreadable. Here a JSON body is stored as the
JSON value itself (``"body": {"json": {...}}``), other bodies as text (``{"string": "..."}``),
one interaction per line, sorted by request (stable: repeated requests keep their order)::

    {"version": 1, "format": "backtrader_ibkr_cp/1", "metadata": {...}, "interactions": [
    {"request": {...}, "response": {...}},
    ...
    ]}

On load, a JSON body is serialised again (compact separators) and the response's
``Content-Length`` is set to the new length, so urllib3 reads exactly the replayed body.
Prices survive the round trip exactly (Python's float repr is shortest round-trip).

:class:`CassettePersister` writes atomically (temporary file, then rename), gzips paths ending in
``.gz`` and reads either. Every read goes through :func:`load_stored`, which refuses a file that
is not such a cassette (empty, truncated, not JSON, JSON without interactions) with
:class:`~backtrader_ibkr_cp.errors.CassetteCorrupt` naming the file.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

from vcr.persisters.filesystem import CassetteNotFoundError
from vcr.serialize import deserialize, serialize

from ..errors import CassetteCorrupt

__all__ = [
    "FORMAT",
    "SERIALIZER_NAME",
    "CassettePersister",
    "body_text",
    "compact_json",
    "load_stored",
    "read_cassette_dict",
]

#: The name the compact serializer is registered under with vcrpy.
SERIALIZER_NAME = "ibkr_cp_json"
#: Written into every cassette so a reader knows the body encoding.
FORMAT = "backtrader_ibkr_cp/1"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _pack_body(holder: dict[str, Any]) -> None:
    """Replace ``holder["body"]`` (a string or ``{"string": s}``) by ``{"json": value}`` when the
    text is JSON that re-serialises to a body of the same meaning."""
    body = holder.get("body")
    text = body.get("string") if isinstance(body, dict) else body
    if not isinstance(text, str) or not text.strip():
        return
    try:
        value = json.loads(text)
    except ValueError:
        return
    holder["body"] = {"json": value}


def _unpack_body(holder: dict[str, Any], *, response: bool) -> None:
    body = holder.get("body")
    if isinstance(body, dict) and "json" in body:
        text = _dumps(body["json"])
        holder["body"] = {"string": text} if response else text
        if response:
            headers = holder.setdefault("headers", {})
            for key in list(headers):
                if key.lower() == "content-length":
                    del headers[key]
            headers["Content-Length"] = [str(len(text.encode("utf-8")))]


def _request_key(interaction: dict[str, Any]) -> tuple[str, str, str]:
    """Sort key: method, URI, body. The sort is stable, so repeated identical requests (polls)
    keep their recorded order, which is all replay depends on; the file no longer depends on
    the order concurrent requests happened to finish in."""
    request = interaction["request"]
    return (str(request.get("method")), str(request.get("uri")), _dumps(request.get("body")))


class compact_json:
    """vcrpy serializer (``serialize(dict) -> str``, ``deserialize(str) -> dict``)."""

    @staticmethod
    def serialize(cassette_dict: dict[str, Any]) -> str:
        interactions = []
        for interaction in cassette_dict.get("interactions", []):
            request = dict(interaction["request"])
            response = dict(interaction["response"])
            _pack_body(request)
            _pack_body(response)
            interactions.append({"request": request, "response": response})
        interactions.sort(key=_request_key)
        head: dict[str, Any] = {"version": cassette_dict.get("version", 1), "format": FORMAT}
        if cassette_dict.get("metadata"):
            head["metadata"] = cassette_dict["metadata"]
        head_text = _dumps(head)[:-1]
        lines = ",\n".join(_dumps(item) for item in interactions)
        return f'{head_text},"interactions":[\n{lines}\n]}}\n'

    @staticmethod
    def deserialize(text: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(text)
        _unpack(data)
        return data


def _unpack(data: dict[str, Any]) -> None:
    for interaction in data.get("interactions", []):
        _unpack_body(interaction["request"], response=False)
        _unpack_body(interaction["response"], response=True)


def _corrupt(file: Path, what: str) -> CassetteCorrupt:
    return CassetteCorrupt(
        f"cassette {file} {what}, so it cannot be replayed; re-record it: `ibkr-cp record "
        f"--cassette {file} SYMBOL... --bar ... --from ... --to ...` against a gateway (or the "
        "simulator), or delete it and run once with record_mode='once'",
        cassette_path=str(file),
        reason=what,
    )


def _checked(data: Any, file: Path) -> dict[str, Any]:
    """``data`` when it has the shape every cassette has (an object with an ``interactions``
    list of ``{"request": {...}, "response": {...}}``), else CassetteCorrupt."""
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        shape = f"a JSON {type(data).__name__}" if not isinstance(data, dict) else "JSON"
        raise _corrupt(
            file,
            f"is {shape} without an 'interactions' list, not a cassette (a cassette starts "
            f'with {{"version":1,"format":"{FORMAT}",...)',
        )
    for index, interaction in enumerate(data["interactions"]):
        if not (
            isinstance(interaction, dict)
            and isinstance(interaction.get("request"), dict)
            and isinstance(interaction.get("response"), dict)
        ):
            raise _corrupt(file, f"has an interaction #{index} without a request and a response")
    return data


def load_stored(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The stored cassette at ``path``, parsed and checked, bodies as stored.

    Raises vcrpy's CassetteNotFoundError when the file does not exist (a recording then
    starts a new file) and :class:`~backtrader_ibkr_cp.errors.CassetteCorrupt`, naming the
    file and what to do, when it is empty, not gzip (``.gz``), not UTF-8, not JSON (e.g.
    truncated) or not a cassette (``{}``).
    """
    file = Path(path)
    if not file.is_file():
        raise CassetteNotFoundError(str(file))
    raw = file.read_bytes()
    if not raw.strip():
        raise _corrupt(file, f"is empty ({len(raw)} bytes)")
    try:
        if file.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(file, f"is not gzip data ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise _corrupt(file, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        raise _corrupt(file, "holds no data")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _corrupt(
            file,
            f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}; a "
            "truncated or hand-edited file?)",
        ) from exc
    return _checked(data, file)


def read_cassette_dict(path: str | os.PathLike[str], *, unpack: bool = True) -> dict[str, Any]:
    """The stored cassette at ``path`` as a dict: bodies unpacked to vcrpy's form, or left as
    stored (``{"json": value}``) with ``unpack=False`` (see :func:`body_text`).

    Raises as :func:`load_stored` does.
    """
    data = load_stored(path)
    if unpack:
        _unpack(data)
    return data


def body_text(body: Any) -> str:
    """The text of a stored body: ``{"json": value}`` serialised (compact), ``{"string": s}``
    or a plain string as it is."""
    if isinstance(body, dict):
        if "json" in body:
            return _dumps(body["json"])
        return str(body.get("string", ""))
    return "" if body is None else str(body)


class _Parsed:
    """A vcrpy serializer handing over a cassette dict that is already parsed and checked."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def deserialize(self, text: str) -> dict[str, Any]:
        del text
        return self._data


class CassettePersister:
    """vcrpy persister: atomic writes, ``.gz`` support, UTF-8 always."""

    @classmethod
    def load_cassette(cls, cassette_path: str | os.PathLike[str], serializer: Any) -> Any:
        """``(requests, responses[, metadata])`` as vcrpy wants them. The file is read in this
        module's format whatever ``serializer`` is, through :func:`read_cassette_dict`
        (CassetteNotFoundError when missing, CassetteCorrupt when unreadable)."""
        del serializer
        return deserialize("", _Parsed(read_cassette_dict(cassette_path)))

    @staticmethod
    def save_cassette(
        cassette_path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any
    ) -> None:
        path = Path(cassette_path)
        data = serialize(cassette_dict, serializer).encode("utf-8")
        if path.suffix == ".gz":
            data = gzip.compress(data, mtime=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
