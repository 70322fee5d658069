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
``.gz`` and reads either.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from vcr.persisters.filesystem import CassetteNotFoundError
from vcr.serialize import deserialize, serialize

__all__ = [
    "FORMAT",
    "SERIALIZER_NAME",
    "CassettePersister",
    "body_text",
    "compact_json",
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
        for interaction in data.get("interactions", []):
            _unpack_body(interaction["request"], response=False)
            _unpack_body(interaction["response"], response=True)
        return data


def read_cassette_dict(path: str | os.PathLike[str], *, unpack: bool = True) -> dict[str, Any]:
    """The stored cassette at ``path`` as a dict: bodies unpacked to vcrpy's form, or left as
    stored (``{"json": value}``) with ``unpack=False`` (see :func:`body_text`).

    Raises CassetteNotFoundError when the file is missing or empty.
    """
    file = Path(path)
    if not file.is_file():
        raise CassetteNotFoundError()
    raw = file.read_bytes()
    if file.suffix == ".gz":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    if not text.strip():
        raise CassetteNotFoundError()
    if not unpack:
        data: dict[str, Any] = json.loads(text)
        return data
    return compact_json.deserialize(text)


def body_text(body: Any) -> str:
    """The text of a stored body: ``{"json": value}`` serialised (compact), ``{"string": s}``
    or a plain string as it is."""
    if isinstance(body, dict):
        if "json" in body:
            return _dumps(body["json"])
        return str(body.get("string", ""))
    return "" if body is None else str(body)


class CassettePersister:
    """vcrpy persister: atomic writes, ``.gz`` support, UTF-8 always."""

    @classmethod
    def load_cassette(cls, cassette_path: str | os.PathLike[str], serializer: Any) -> Any:
        path = Path(cassette_path)
        if not path.is_file():
            raise CassetteNotFoundError()
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
        if not text.strip():
            raise CassetteNotFoundError()
        return deserialize(text, serializer)

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
