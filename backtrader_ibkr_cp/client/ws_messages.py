"""The gateway WebSocket's words: commands to send, messages parsed. Pure: no I/O.

Commands follow IBKR's ``TOPIC+TARGET+{json}`` form (``reference/ibkr-cp-api.md`` section 5,
``reference/orders/ibkr-cp-orders.md`` section 7): ``smd+CONID+{"fields":[...]}`` /
``umd+CONID+{}`` (market data), ``sor+{}`` / ``uor+{}`` (orders), ``str+{...}`` / ``utr``
(trades), ``ech+hb`` (echo heartbeat), ``tic`` (keep the brokerage session alive) and
``{"session": "<token>"}`` (log in when the gateway says ``waiting for session``).

Server messages arrive as text or binary frames (IBKR's gateway forwards its backend's text as
binary); each is one JSON object, except the echo's literal answer ``ech+hb``.
:func:`parse_message` turns a frame into one of the frozen message values below; market data
stays a dict of raw fields (:func:`merge_market` folds an update into the last state, and
:func:`snapshot_of` reads the result with the snapshot endpoint's own parser, so a WebSocket
listener gets exactly the :class:`~backtrader_ibkr_cp.models.Snapshot` the poller would give).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import AuthenticationError, DataIntegrityError
from ..models.market import Snapshot
from ..models.snapshot import parse_snapshots

__all__ = [
    "ECHO",
    "SOR",
    "TIC",
    "UOR",
    "UTR",
    "Accounts",
    "AuthState",
    "Echo",
    "Greeting",
    "Heartbeat",
    "MarketUpdate",
    "OrderUpdate",
    "TicReply",
    "TopicError",
    "TradeUpdate",
    "Unrecognised",
    "WaitingForSession",
    "WsMessage",
    "merge_market",
    "parse_message",
    "session_cookie",
    "session_message",
    "session_token",
    "smd_command",
    "snapshot_of",
    "str_command",
    "umd_command",
]

ENDPOINT = "/ws"
#: The echo heartbeat (and the gateway's literal answer to it).
ECHO = "ech+hb"
#: Keeps the brokerage session alive; answered by a ``tic`` message.
TIC = "tic"
SOR = "sor+{}"
UOR = "uor+{}"
UTR = "utr"
#: Keys of an ``smd`` message that are not market-data fields.
_ENVELOPE = ("topic",)


def smd_command(conid: int, fields: Iterable[str]) -> str:
    """``smd+265598+{"fields":["31","84"]}``: subscribe (or re-subscribe) market data."""
    return f"smd+{int(conid)}+" + json.dumps({"fields": [str(code) for code in fields]})


def umd_command(conid: int) -> str:
    """``umd+265598+{}``: cancel market data (IBKR sends no confirmation)."""
    return f"umd+{int(conid)}+{{}}"


def str_command(days: int = 1, realtime_only: bool = False) -> str:
    """``str+{...}``: trades of the last ``days`` (1-7) New York days, then new ones; with
    ``realtime_only`` only new ones."""
    args: dict[str, Any] = {"days": int(days)}
    if realtime_only:
        args["realtimeUpdatesOnly"] = True
    return "str+" + json.dumps(args)


def session_message(token: str) -> str:
    """``{"session": "<token>"}``: the answer to ``waiting for session``."""
    return json.dumps({"session": token})


def session_cookie(token: str, form: str = "json") -> str:
    """The ``Cookie`` header value carrying the session: ``api={"session":"<token>"}``
    (``form="json"``, ibind's form, known to work with the gateway) or ``api=<token>``
    (``form="plain"``, IBKR's documented form)."""
    if form == "plain":
        return f"api={token}"
    if form == "json":
        return "api=" + json.dumps({"session": token}, separators=(",", ":"))
    raise ValueError(f"cookie form {form!r} is not known; use 'json' or 'plain'")


def session_token(tickle: Any) -> str:
    """The ``session`` value of a ``POST /tickle`` answer (the WebSocket's cookie value).

    Raises AuthenticationError when the gateway has no session to give, DataIntegrityError
    when the answer is not a tickle object. The token is a secret: never log it.
    """
    if not isinstance(tickle, Mapping):
        raise DataIntegrityError(
            f"/tickle answered with a {type(tickle).__name__}, not an object; is this a Client "
            "Portal Gateway? retry, and report it if it persists",
            endpoint="/tickle",
        )
    token = tickle.get("session")
    if not isinstance(token, str) or not token.strip():
        raise AuthenticationError(
            "/tickle gave no session token for the WebSocket; log in to the gateway (open its "
            "page, e.g. https://localhost:5000) and retry",
            endpoint="/tickle",
            status=200,
        )
    return token.strip()


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Greeting:
    """``{"topic": "system", "success": "<user>"}``: the socket is logged in."""

    user: str


@dataclass(frozen=True)
class Heartbeat:
    """``{"topic": "system", "hb": <epoch ms>}``: the gateway's heartbeat (its clock)."""

    epoch_ms: int | None


@dataclass(frozen=True)
class AuthState:
    """``sts``: the brokerage session's state (missing flags read as None)."""

    authenticated: bool | None
    competing: bool | None
    message: str = ""


@dataclass(frozen=True)
class Accounts:
    """``act``: the ``/iserver/accounts`` object (``isPaper`` included)."""

    body: Mapping[str, Any]


@dataclass(frozen=True)
class TicReply:
    """The answer to ``tic`` (``lastAccessed`` in epoch ms when given)."""

    body: Mapping[str, Any]


@dataclass(frozen=True)
class Echo:
    """The answer to ``ech+hb``."""


@dataclass(frozen=True)
class WaitingForSession:
    """``{"message": "waiting for session"}``: send :func:`session_message`."""


@dataclass(frozen=True)
class MarketUpdate:
    """An ``smd+CONID`` message: ``fields`` holds every key but ``topic`` (field codes,
    ``conid``, ``_updated`` ...), values as the gateway sent them."""

    conid: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class OrderUpdate:
    """A ``sor`` message: full order objects first, then changes (``acct`` + ``orderId`` +
    the changed fields), several per message."""

    orders: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class TradeUpdate:
    """A ``str`` message: executions as ``/iserver/account/trades`` shows them."""

    trades: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class TopicError:
    """A message carrying ``error`` (e.g. an unknown conid): ``topic`` may be empty."""

    topic: str
    error: str


@dataclass(frozen=True)
class Unrecognised:
    """Anything else (``blt``, ``ntf``, topics this client does not use)."""

    topic: str
    body: Mapping[str, Any] = field(default_factory=dict)


WsMessage = (
    Greeting
    | Heartbeat
    | AuthState
    | Accounts
    | TicReply
    | Echo
    | WaitingForSession
    | MarketUpdate
    | OrderUpdate
    | TradeUpdate
    | TopicError
    | Unrecognised
)


def _malformed(what: str, value: object) -> DataIntegrityError:
    return DataIntegrityError(
        f"the gateway's WebSocket sent {what} {str(value)[:120]!r}; the socket keeps "
        "running; report it if it persists",
        endpoint=ENDPOINT,
    )


def _flag(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _items(value: object, topic: str) -> tuple[Mapping[str, Any], ...]:
    if isinstance(value, Mapping):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise _malformed(f"a {topic} message whose args are not objects:", value)
    return tuple(value)


def parse_message(data: str | bytes) -> WsMessage:
    """One frame as a message value (see the module docstring).

    Raises DataIntegrityError for a frame that is neither the echo nor a JSON object, and for
    an ``smd`` message without a usable conid.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if text.strip() == ECHO:
        return Echo()
    try:
        body = json.loads(text)
    except ValueError:
        raise _malformed("a frame that is not JSON:", text) from None
    if not isinstance(body, dict):
        raise _malformed("a frame that is not a JSON object:", text)
    topic = body.get("topic")
    topic = topic if isinstance(topic, str) else ""
    if "error" in body:
        return TopicError(topic, str(body["error"]))
    head, _, target = topic.partition("+")
    if head == "system":
        if "success" in body:
            return Greeting(str(body["success"]))
        beat = body.get("hb")
        return Heartbeat(int(beat) if isinstance(beat, (int, float)) else None)
    if head == "sts":
        args = body.get("args")
        args = args if isinstance(args, Mapping) else {}
        message = args.get("message")
        return AuthState(
            _flag(args.get("authenticated")),
            _flag(args.get("competing")),
            message if isinstance(message, str) else "",
        )
    if head == "act":
        args = body.get("args")
        return Accounts(args if isinstance(args, Mapping) else {})
    if head == "tic":
        return TicReply(body)
    if head == "smd":
        return _market(body, target)
    if head == "sor":
        return OrderUpdate(_items(body.get("args", []), "sor"))
    if head == "str":
        return TradeUpdate(_items(body.get("args", []), "str"))
    if not topic and body.get("message") == "waiting for session":
        return WaitingForSession()
    return Unrecognised(topic, body)


def _market(body: Mapping[str, Any], target: str) -> MarketUpdate:
    conid = body.get("conid", target.partition("@")[0])
    if isinstance(conid, str) and conid.isdigit():
        conid = int(conid)
    if isinstance(conid, bool) or not isinstance(conid, int) or conid <= 0:
        raise _malformed("an smd message without a conid:", body)
    fields = {key: value for key, value in body.items() if key not in _ENVELOPE}
    fields["conid"] = conid
    return MarketUpdate(conid, fields)


def merge_market(state: Mapping[str, Any] | None, update: MarketUpdate) -> dict[str, Any]:
    """The conid's fields after ``update``: the first message gives every field, later ones
    only the changed ones, which replace the old values (``""`` means "no longer
    available")."""
    merged = dict(state) if state else {}
    merged.update(update.fields)
    return merged


def snapshot_of(state: Mapping[str, Any]) -> Snapshot:
    """The merged fields read by the snapshot endpoint's parser (DataIntegrityError when a
    value is malformed)."""
    return parse_snapshots([dict(state)])[0]
