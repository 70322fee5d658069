"""The gateway's request pipeline, independent of HTTP plumbing.

For each request: count it, apply the session idle timeout, advance the order engine to the
simulated now, enforce pacing (429 and penalty box), route it (exact paths in :data:`ROUTES`,
templated order and portfolio paths in :mod:`.orders.routes`; a trailing ``/`` is ignored), take
an injected fault, gate ``/iserver/*`` on the brokerage session (401 text/plain), run the
endpoint, then let data faults spoil the answer. The result is an :class:`Outcome` the server
carries out (respond, reset the connection, or hold it). An ``answer_lost`` fault runs the
endpoint (an order POST places its order) and then resets the connection without an answer.
"""

from __future__ import annotations

import enum
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import handlers
from .context import SimContext
from .faults import Fault, FaultQueue
from .gates import Gate, Gates
from .history import serve_history
from .orders.routes import match
from .pacing import HISTORY_PATH, SNAPSHOT_PATH, Pacer
from .secdef import trsrv_secdef
from .snapshot import parse_ids, serve_snapshot
from .wire import Request, Response

__all__ = ["API_PREFIX", "Action", "Gateway", "Outcome"]

API_PREFIX = "/v1/api"
LOGIN_REDIRECT = "/sso/Login?forwardTo=22&RL=1&ip2loc=on"
_LOG = logging.getLogger("backtrader_ibkr_cp.simulator")

Handler = Callable[[Request, SimContext], Response]
_GET, _POST, _BOTH = frozenset({"GET"}), frozenset({"POST"}), frozenset({"GET", "POST"})
ROUTES: dict[str, tuple[frozenset[str], Handler]] = {
    "/iserver/auth/status": (_BOTH, handlers.auth_status),
    "/iserver/auth/ssodh/init": (_POST, handlers.ssodh_init),
    "/tickle": (_BOTH, handlers.tickle),
    "/iserver/reauthenticate": (_BOTH, handlers.reauthenticate),
    "/logout": (_POST, handlers.logout),
    "/sso/validate": (_GET, handlers.sso_validate),
    "/iserver/accounts": (_GET, handlers.accounts),
    "/iserver/secdef/search": (_BOTH, handlers.secdef_search),
    "/trsrv/stocks": (_GET, handlers.trsrv_stocks),
    "/trsrv/secdef": (_BOTH, trsrv_secdef),
    HISTORY_PATH: (_GET, serve_history),
    SNAPSHOT_PATH: (_GET, serve_snapshot),
    "/iserver/marketdata/unsubscribe": (_POST, handlers.unsubscribe),
    "/iserver/marketdata/unsubscribeall": (_GET, handlers.unsubscribe_all),
}
#: Endpoints that work without a brokerage session.
SESSION_FREE = frozenset(
    {"/iserver/auth/status", "/iserver/auth/ssodh/init", "/iserver/reauthenticate"}
)
_LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Client Portal Login</title></head>"
    "<body><p>Simulated IBKR Client Portal Gateway: nothing to log in to.</p></body></html>"
)


class Action(enum.Enum):
    """What the server does with a request."""

    RESPOND = "respond"
    RESET = "reset"
    HOLD = "hold"


@dataclass(frozen=True)
class Outcome:
    """``action`` after waiting ``delay`` seconds; ``hold`` seconds for :attr:`Action.HOLD`.
    ``release`` (if any) must be called once the request is finished. ``gate``: wait at it
    first (:mod:`.gates`)."""

    action: Action
    response: Response | None = None
    delay: float = 0.0
    hold: float = 0.0
    release: Callable[[], None] | None = None
    gate: Gate | None = None


class Gateway:
    """Thread-safe request pipeline; ``latency`` (seconds) is added to every API answer, and
    admitted answers to a path with a closed gate in :attr:`gates` wait at it."""

    def __init__(
        self, ctx: SimContext, pacer: Pacer, faults: FaultQueue, latency: float = 0.0
    ) -> None:
        self.ctx = ctx
        self.pacer = pacer
        self.faults = faults
        self.latency = latency
        self.gates = Gates()

    def handle(self, method: str, path: str, query: Mapping[str, str], body: bytes) -> Outcome:
        """Process one request to ``path`` (as sent, with ``/v1/api``) and say what to do."""
        stats = self.ctx.stats
        if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
            stats.record_request(path)
            return Outcome(Action.RESPOND, _outside_api(path))
        api_path = path[len(API_PREFIX) :].rstrip("/") or "/"
        stats.record_request(api_path)
        if api_path == HISTORY_PATH:
            stats.record_history(query)
        elif api_path == SNAPSHOT_PATH:
            ids = parse_ids(query.get("conids"))
            stats.record_snapshot([int(text) for text in ids if text.isdigit()])
        self.ctx.session.touch()
        try:
            self.ctx.trading.advance()
        except Exception:  # the engine must never cost a request its answer
            _LOG.exception("simulator order engine failed to advance")

        admission = self.pacer.admit(api_path)
        if not admission.allowed:
            stats.record_rate_limited()
            if admission.opened_penalty:
                stats.record_violation(api_path, admission.violation)
                _LOG.warning("429 on %s: %s (penalty box opened)", api_path, admission.violation)
            else:
                _LOG.debug("429 on %s: %s", api_path, admission.violation)
            return Outcome(Action.RESPOND, _too_many(admission.retry_after), self.latency)
        try:
            outcome = self._route(Request(method, api_path, dict(query), body))
        except Exception:  # an endpoint bug must still answer, and free its history slot
            _LOG.exception("simulator endpoint %s failed", api_path)
            outcome = Outcome(Action.RESPOND, Response.error(500, "simulator error"))
        return Outcome(
            outcome.action,
            outcome.response,
            outcome.delay + self.latency,
            outcome.hold,
            admission.release,
            self.gates.get(api_path) if outcome.action is Action.RESPOND else None,
        )

    def _route(self, request: Request) -> Outcome:
        route = ROUTES.get(request.path)
        if route is not None:
            methods, found = route
            handler: Handler | None = found if request.method in methods else None
        else:
            handler, params, methods = match(request.method, request.path)
            if not methods:
                return Outcome(Action.RESPOND, Response.error(404, f"{request.path} not found"))
            request = replace(request, params=params)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            response = Response.error(405, f"{request.method} not allowed; use {allowed}")
            return Outcome(Action.RESPOND, response.with_headers(("Allow", allowed)))

        fault = self.faults.take(request.path)
        delay = 0.0
        if fault is not None:
            _LOG.debug("fault %s on %s", fault.kind, request.path)
            early = self._early_fault(fault)
            if early is not None:
                return early
            if fault.kind == "latency":
                delay = fault.seconds

        lost = fault is not None and fault.kind == "answer_lost"
        denied = self._gate(request.path)
        if denied is not None:
            return Outcome(Action.RESET if lost else Action.RESPOND, denied, delay)
        if fault is not None and fault.kind == "no_data":
            return Outcome(Action.RESPOND, Response.json({"error": "No data."}), delay)
        if request.path == HISTORY_PATH:
            response = serve_history(request, self.ctx, self.pacer.limits.history_max_points)
        else:
            response = handler(request, self.ctx)
        if lost:
            return Outcome(Action.RESET, delay=delay)
        if fault is not None:
            response = _spoil(fault, response, self.ctx.market.seed)
        return Outcome(Action.RESPOND, response, delay)

    def _early_fault(self, fault: Fault) -> Outcome | None:
        kind = fault.kind
        if kind == "http_500":
            return Outcome(Action.RESPOND, Response.error(500, "Internal Server Error"))
        if kind == "http_503":
            return Outcome(Action.RESPOND, Response.error(503, "Service Unavailable"))
        if kind == "http_429":
            self.ctx.stats.record_rate_limited()
            return Outcome(Action.RESPOND, _too_many(1))
        if kind == "reset":
            return Outcome(Action.RESET)
        if kind == "timeout":
            return Outcome(Action.HOLD, hold=fault.seconds)
        if kind == "competing":
            self.ctx.session.take_over()
        elif kind == "daily_reset":
            self.ctx.session.drop_brokerage()
        return None

    def _gate(self, path: str) -> Response | None:
        """401 text/plain when ``path`` needs a session that does not exist."""
        session = self.ctx.session
        if path in SESSION_FREE:
            return None
        if not session.connected:
            return Response.text(401, "Unauthorized: not logged in")
        if path.startswith("/iserver/") and not session.authenticated:
            return Response.text(401, "Unauthorized: no brokerage session")
        return None


def _too_many(retry_after: int) -> Response:
    return Response.error(429, "Too many requests").with_headers(("Retry-After", str(retry_after)))


def _outside_api(path: str) -> Response:
    if path == "/":
        return Response.html(302, "").with_headers(("Location", LOGIN_REDIRECT))
    if path == "/sso/Login":
        return Response.html(200, _LOGIN_PAGE)
    return Response.html(404, "<html><body>Not Found</body></html>")


def _spoil(fault: Fault, response: Response, seed: int) -> Response:
    """Apply a fault that damages an otherwise normal answer."""
    if fault.kind == "malformed":
        body = response.body[: max(1, len(response.body) // 2)]
        return Response(200, body, response.content_type, response.headers)
    if fault.kind not in ("invalid_bar", "duplicate_bars", "out_of_order"):
        return response
    document: Any = json.loads(response.body)
    data = document.get("data") if isinstance(document, dict) else None
    if not data:
        return response
    if fault.kind == "invalid_bar":
        bar = data[len(data) // 2]
        bar["h"] = round(bar["l"] - 0.01, 2)
    elif fault.kind == "duplicate_bars":
        middle = len(data) // 2
        for index in range(min(len(data), middle + 3) - 1, middle - 1, -1):
            data.insert(index + 1, dict(data[index]))  # each repeat right after its original
    else:
        original = list(data)
        random.Random(f"{seed}:shuffle:{len(data)}").shuffle(data)
        if data == original:
            data.reverse()
    document["points"] = len(data)
    return Response.json(document, response.status, response.headers)
