"""The mapping of vcrpy's "cannot play back" error to the cassette errors.

The error classes live in :mod:`backtrader_ibkr_cp.errors` (the one exception tree) and are
re-exported here, so ``from backtrader_ibkr_cp.cassettes.errors import CassetteMiss`` keeps
working.

``translate_cassette_error`` is meant for the HTTP boundary (the client's Transport), where a
vcrpy error raised inside ``requests`` must become this package's typed error::

    except Exception as exc:
        from ..cassettes.errors import translate_cassette_error

        mapped = translate_cassette_error(exc)
        if mapped is None:
            raise
        raise mapped from exc
"""

from __future__ import annotations

from vcr.errors import CannotOverwriteExistingCassetteException, UnhandledHTTPRequestError

from ..errors import (
    CassetteCorrupt,
    CassetteError,
    CassetteMiss,
    CassetteNotFound,
    MarketError,
)
from .matching import describe_request

__all__ = [
    "CassetteCorrupt",
    "CassetteError",
    "CassetteMiss",
    "CassetteNotFound",
    "translate_cassette_error",
]


def _rerecord_hint(path: str) -> str:
    return (
        f"re-record it: `ibkr-cp record --cassette {path} SYMBOL... --bar ... --from ... "
        f"--to ...` against a gateway, or run once with record_mode='new_episodes' (add the "
        f"missing requests) or record_mode='all' (record everything again)"
    )


def _miss(method: str, uri: str, cassette_path: str, reason: str | None) -> CassetteMiss:
    described = describe_request(method, uri)
    path_and_query = described.split(" ", 1)[1]
    path, _, query = path_and_query.partition("?")
    if reason == "already_played":
        why = "was recorded fewer times than this run made it (all recorded answers used)"
    elif reason == "cassette_not_found":
        why = "cannot be answered: the cassette is empty or missing"
    else:
        why = "is not in the cassette"
    return CassetteMiss(
        f"request {described} {why} {cassette_path}; the run differs from the recorded one "
        f"(symbols, dates, bar size, outside-RTH, or a newer backtrader_ibkr_cp): "
        f"{_rerecord_hint(cassette_path)}",
        method=method,
        path=path,
        query=query,
        cassette_path=cassette_path,
        reason=reason,
    )


def translate_cassette_error(exc: BaseException) -> MarketError | None:
    """The :class:`CassetteMiss` for a vcrpy "cannot play back" error anywhere in ``exc``'s
    chain (``__cause__``/``__context__``, a ``requests``/urllib3 wrapper's ``reason`` or
    ``args``), ``exc`` itself when it already is a CassetteError, else None.

    Call it at the HTTP boundary: ``except Exception as exc: mapped =
    translate_cassette_error(exc); if mapped: raise mapped from exc``.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, CassetteError):
            return current
        if isinstance(current, CannotOverwriteExistingCassetteException):
            request = getattr(current, "failed_request", None)
            cassette = getattr(current, "cassette", None)
            cassette_path = str(getattr(cassette, "_path", "") or "the cassette")
            if request is None:
                return CassetteError(
                    f"the cassette {cassette_path} cannot serve this run ({current}); "
                    f"{_rerecord_hint(cassette_path)}"
                )
            return _miss(
                request.method, request.uri, cassette_path, getattr(current, "reason", None)
            )
        if isinstance(current, UnhandledHTTPRequestError):
            return CassetteError(
                f"a request is not in the cassette ({current}); re-record the cassette"
            )
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                stack.append(linked)
        stack.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return None
