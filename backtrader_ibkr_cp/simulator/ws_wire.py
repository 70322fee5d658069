"""The WebSocket's words: client commands parsed, server messages built. Pure: no I/O.

Commands (text frames, IBKR's ``TOPIC+TARGET+{json}`` form, see ibkr-cp-api.md section 5):
``smd+CONID+{"fields":[...]}`` / ``umd+CONID+{}`` (market data), ``sor+{}`` / ``uor+{}``
(orders), ``str+{"days":N,"realtimeUpdatesOnly":bool}`` / ``utr`` (trades; ``+{}`` optional on
every order and trade command), ``ech+hb`` (echo), ``tic`` (keep the session alive) and
``{"session":"<token>"}`` (log the socket in when no cookie did).

Server messages are JSON objects with a ``topic``, except the echo, which answers the literal
text ``ech+hb`` (as IBKR's gateway does: clients in the wild ignore that raw string).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ECHO",
    "Command",
    "cookie_session",
    "heartbeat",
    "parse_command",
    "smd_delta",
    "smd_first",
    "status",
    "topic_of",
]

#: The echo command and its answer.
ECHO = "ech+hb"
#: Market-data field codes always carried by the first ``smd`` message.
AVAILABILITY = "6509"


@dataclass(frozen=True)
class Command:
    """One client command. ``kind``: ``smd``, ``umd``, ``sor``, ``uor``, ``str``, ``utr``,
    ``ech``, ``tic``, ``session`` or ``unknown``; ``target`` the conid text for market data;
    ``args`` the JSON object after the last ``+`` (``{}`` when absent or unreadable)."""

    kind: str
    target: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""


def _args(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def parse_command(text: str) -> Command:
    """Parse one text frame (see the module docstring)."""
    body = text.strip()
    if body.startswith("{"):
        args = _args(body)
        if "session" in args:
            return Command("session", args=args, text=text)
        return Command("unknown", args=args, text=text)
    if body == ECHO or body.startswith(ECHO + "+"):
        return Command("ech", text=text)
    if body == "tic":
        return Command("tic", text=text)
    head, _, rest = body.partition("+")
    if head in ("smd", "umd"):
        target, _, tail = rest.partition("+")
        return Command(head, target.strip(), _args(tail) if tail else {}, text)
    if head in ("sor", "uor", "str", "utr"):
        return Command(head, args=_args(rest) if rest else {}, text=text)
    return Command("unknown", text=text)


def cookie_session(header: str | None) -> tuple[str | None, bool]:
    """``(session token, gateway)`` from a ``Cookie`` header.

    The token comes from ``api=<token>`` (IBKR's documented form) or ``api={"session":
    "<token>"}`` (ibind's form); ``gateway`` is True when the header carries IBKR's gateway
    login cookie ``USERID`` (the real gateway's own backend connection sends ``REGION=;
    USERID=`` and no ``api`` cookie).
    """
    token: str | None = None
    gateway = False
    for part in (header or "").split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            continue
        if name == "USERID":
            gateway = True
        elif name == "api":
            value = value.strip()
            if value.startswith("{"):
                found = _args(value).get("session")
                token = found if isinstance(found, str) else ""
            else:
                token = value.strip('"')
    return token, gateway


def topic_of(message: Mapping[str, Any] | str) -> str:
    """The stats bucket of a server message: its topic without the target (``smd``)."""
    if isinstance(message, str):
        return message.partition("+")[0]
    topic = message.get("topic")
    if isinstance(topic, str):
        return topic.partition("+")[0]
    if "error" in message:
        return "error"
    return "message"


def heartbeat(epoch_ms: int) -> dict[str, Any]:
    """``{"topic": "system", "hb": <epoch ms>}`` (the gateway's clock)."""
    return {"topic": "system", "hb": epoch_ms}


def status(
    state: Mapping[str, bool], server_name: str, server_version: str, user: str
) -> dict[str, Any]:
    """The ``sts`` message for an auth state (``authenticated``, ``competing``,
    ``connected``), as IBKR sends it on connect and on every change."""
    return {
        "topic": "sts",
        "args": {
            "authenticated": state["authenticated"],
            "competing": state["competing"],
            "connected": state["connected"],
            "message": "",
            "fail": "",
            "serverName": server_name,
            "serverVersion": server_version,
            "username": user,
        },
    }


def smd_first(
    conid: int, fields: frozenset[str], values: Mapping[str, Any], server_id: str, updated: int
) -> dict[str, Any]:
    """The first ``smd`` message of a subscription: every requested field available now,
    ``6509``, the ids and ``_updated`` (epoch ms), like a snapshot entry plus ``topic``."""
    message: dict[str, Any] = {
        "conidEx": str(conid),
        "conid": conid,
        "server_id": server_id,
        "_updated": updated,
        "6119": server_id,
    }
    for code in sorted(fields, key=lambda f: (len(f), f)):
        if code in values and code != AVAILABILITY:
            message[code] = values[code]
    message[AVAILABILITY] = values[AVAILABILITY]
    message["topic"] = f"smd+{conid}"
    return message


def smd_delta(
    conid: int,
    fields: frozenset[str],
    previous: Mapping[str, Any],
    values: Mapping[str, Any],
    updated: int,
) -> dict[str, Any] | None:
    """An update carrying only the fields that changed since ``previous`` (plus ``conid``,
    ``_updated`` and ``topic``), or None when nothing changed. A field that is no longer
    available is sent as ``""`` (a snapshot would omit it; both read as "not available")."""
    changed: dict[str, Any] = {}
    for code in sorted(fields | {AVAILABILITY}, key=lambda f: (len(f), f)):
        now, before = values.get(code), previous.get(code)
        if now != before:
            changed[code] = "" if now is None else now
    if not changed:
        return None
    return {"conid": conid, **changed, "_updated": updated, "topic": f"smd+{conid}"}
