"""Keeping account ids out of the errors of account-scoped endpoints.

The order and portfolio paths carry the account id (``/iserver/account/DU1234567/orders``), and
the transport names the path in its messages and chains the ``requests`` exception, whose text
holds the URL. :func:`account_safe` wraps a call so that any
:class:`~backtrader_ibkr_cp.errors.MarketError` leaving it has the ids replaced by
``<account>`` in its message, ``endpoint``, ``gateway_message`` and text context, and, when the
chained cause's text holds an id, the chain is cut (its type is kept in
``context["cause"]``). :func:`checked_account` validates an account argument without ever
quoting it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..errors import ApiError, ConfigError, MarketError
from ..wire import ACCOUNT_ID

__all__ = ["PLACEHOLDER", "account_safe", "checked_account", "redact", "redact_error"]

#: What an account id becomes in messages.
PLACEHOLDER = "<account>"


def redact(text: str) -> str:
    """``text`` with every account id replaced by :data:`PLACEHOLDER`."""
    return ACCOUNT_ID.sub(PLACEHOLDER, text)


def _chain_text(exc: BaseException) -> str:
    parts = []
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__ or exc.__context__
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{current!s} {current.args!r}")
        current = current.__cause__ or current.__context__
    return " ".join(parts)


def redact_error(error: MarketError) -> MarketError:
    """Remove account ids from ``error`` in place (see the module docstring); returns it."""
    error.message = redact(error.message)
    error.args = (error.message, *error.args[1:])
    if error.endpoint is not None:
        error.endpoint = redact(error.endpoint)
    if isinstance(error, ApiError) and error.gateway_message is not None:
        error.gateway_message = redact(error.gateway_message)
    for key, value in list(error.context.items()):
        if isinstance(value, str):
            error.context[key] = redact(value)
    if ACCOUNT_ID.search(_chain_text(error)):
        cause = error.__cause__ or error.__context__
        error.context.setdefault("cause", type(cause).__name__)
        error.__cause__ = None
        error.__context__ = None
        error.__suppress_context__ = True
    return error


@contextlib.contextmanager
def account_safe() -> Iterator[None]:
    """Run the block; a MarketError leaving it carries no account id (same object)."""
    try:
        yield
    except MarketError as error:
        redact_error(error)
        raise


def checked_account(account: object) -> str:
    """``account`` when it is an IBKR account id (``DU`` and digits); ConfigError otherwise (the
    message describes the value without quoting it: it may be a real id mistyped)."""
    if isinstance(account, str) and ACCOUNT_ID.fullmatch(account):
        return account
    what = (
        f"a string of {len(account)} characters"
        if isinstance(account, str)
        else type(account).__name__
    )
    raise ConfigError(
        f"account must be an IBKR account id ('U' or 'DU' and digits: one of "
        f"iserver_accounts().accounts), got {what}"
    )
