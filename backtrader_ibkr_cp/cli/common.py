"""What every ``ibkr-cp`` subcommand shares: argument types, gateway options, output helpers."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import IO, Any
from zoneinfo import ZoneInfo

from ..errors import ConfigError, RateLimitExceeded
from ..models import Timeframe
from ..models.timeframe import BT_DAYS, BT_MINUTES, BT_MONTHS, BT_WEEKS

__all__ = [
    "BAR_HELP",
    "DEFAULT_GATEWAY",
    "ENV_GATEWAY",
    "Progress",
    "add_gateway_options",
    "bar_name",
    "exchange_span",
    "make_client",
    "parse_date",
    "parse_exchange_date",
    "parse_timeframe",
    "parse_verify",
    "print_table",
    "rate_limited_message",
]

#: The gateway a command talks to when neither --gateway nor $IBKR_GATEWAY_URL says otherwise.
DEFAULT_GATEWAY = "https://localhost:5000"
#: Environment variable with the default gateway URL.
ENV_GATEWAY = "IBKR_GATEWAY_URL"

_DATE_FORMS = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]"
_DATE_HELP = f"{_DATE_FORMS}; dates without a zone are UTC"
#: How ``--from``/``--to`` read a date without a zone: as backtrader's feed reads a naive
#: ``fromdate``.
EXCHANGE_TIME_HELP = (
    f"{_DATE_FORMS}; without Z or an offset it is the exchange's local time (New York for US "
    "stocks), as for the backtrader feed's fromdate/todate"
)


def _parse_iso(text: str, forms: str) -> datetime:
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day)
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use {forms} (e.g. 2024-02-01)"
        ) from None


def parse_date(text: str) -> datetime:
    """``"2024-02-01"`` -> 2024-02-01 00:00 UTC; an ISO date-time keeps its offset (UTC when it
    has none). Raises ``argparse.ArgumentTypeError`` naming the accepted forms."""
    parsed = _parse_iso(text, _DATE_HELP)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_exchange_date(text: str) -> datetime:
    """``--from``/``--to``: ``"2024-02-01"`` -> naive 2024-02-01 00:00, meaning exchange time
    (made aware by :func:`exchange_span` once the contract is known); a value with ``Z`` or an
    offset stays aware. Raises ``argparse.ArgumentTypeError`` naming the accepted forms."""
    return _parse_iso(text, EXCHANGE_TIME_HELP)


def bar_name(timeframe: Timeframe) -> str:
    """How the command line spells a bar size: IBKR's bar string, but ``1mo`` for one month
    (IBKR's ``1m`` reads as one minute)."""
    return "1mo" if timeframe is Timeframe.MONTH_1 else timeframe.bar


#: The bar sizes ``--bar`` accepts, for help texts and messages.
BAR_HELP = (
    f"{', '.join(bar_name(tf) for tf in Timeframe)}, or backtrader's Minutes/N (N = "
    f"{', '.join(str(tf.minutes) for tf in Timeframe if tf.is_intraday)}), Days/1, Weeks/1, "
    "Months/1"
)
_MONTH = frozenset({"1mo", "1mon", "1month"})
_BT_SPELLING = re.compile(r"(minutes|days|weeks|months)/(\d+)", re.IGNORECASE)
_BT_TIMEFRAMES = {"minutes": BT_MINUTES, "days": BT_DAYS, "weeks": BT_WEEKS, "months": BT_MONTHS}


def parse_timeframe(text: str) -> Timeframe:
    """``--bar``: ``"5min"`` -> Timeframe.MINUTE_5 (argparse type; lists the valid sizes on
    error). Takes IBKR's bar strings, ``1mo``/``1month`` for one month and backtrader's
    ``Minutes/5`` spelling; refuses ``1m``, which IBKR reads as one month but people as one
    minute."""
    value = text.strip()
    if value.lower() == "1m":
        raise argparse.ArgumentTypeError(
            "bar size '1m' is ambiguous: IBKR reads it as one month; use 1min for one-minute "
            "bars or 1mo (1month) for monthly bars"
        )
    if value.lower() in _MONTH:
        return Timeframe.MONTH_1
    spelled = _BT_SPELLING.fullmatch(value)
    try:
        if spelled is not None:
            kind = _BT_TIMEFRAMES[spelled.group(1).lower()]
            return Timeframe.from_backtrader(kind, int(spelled.group(2)))
        return Timeframe.parse(value)
    except ConfigError:
        raise argparse.ArgumentTypeError(
            f"bar size {text!r} is not supported; use one of {BAR_HELP}"
        ) from None


def parse_verify(text: str) -> bool | str:
    """``--verify``: ``true``/``false``, a CA bundle path, or ``sha256:<fingerprint>``."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    return text.strip()


def add_gateway_options(parser: argparse.ArgumentParser) -> None:
    """``--gateway URL`` and ``--verify``, for every subcommand that talks to a gateway."""
    parser.add_argument(
        "--gateway",
        metavar="URL",
        default=os.environ.get(ENV_GATEWAY, DEFAULT_GATEWAY),
        help=f"gateway URL (default: ${ENV_GATEWAY} or {DEFAULT_GATEWAY})",
    )
    parser.add_argument(
        "--verify",
        metavar="V",
        type=parse_verify,
        default=None,
        help="TLS: true, false, a CA bundle path, or sha256:<certificate fingerprint> "
        "(default: no CA check for a gateway on this machine, verified otherwise)",
    )


def add_date_range(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--from``/``--to`` (``args.start``/``args.end``). Values without a zone are naive and
    mean exchange time: pass them through :func:`exchange_span` before use."""
    parser.add_argument(
        "--from", dest="start", metavar="DATE", type=parse_exchange_date, required=required,
        help=f"first bar start, inclusive ({EXCHANGE_TIME_HELP})",
    )  # fmt: skip
    parser.add_argument(
        "--to", dest="end", metavar="DATE", type=parse_exchange_date, required=required,
        help="end, exclusive (bars starting before it); same forms and zone as --from",
    )  # fmt: skip


def check_range(start: datetime, end: datetime) -> None:
    """ConfigError when ``--to`` is not after ``--from``; a naive and an aware value cannot be
    compared before :func:`exchange_span`, which checks them again."""
    if (start.tzinfo is None) != (end.tzinfo is None):
        return
    if end <= start:
        raise ConfigError(
            f"--to {end.isoformat()} is not after --from {start.isoformat()}; give a later --to"
        )


def exchange_span(
    client: Any, symbols: Sequence[str], start: datetime, end: datetime
) -> tuple[datetime, datetime]:
    """``--from``/``--to`` as aware datetimes: a naive value is in the exchange time zone of
    ``symbols``' contracts (resolved through ``client``, only when a value is naive), as the
    backtrader feed reads a naive ``fromdate``. Raises ConfigError when the symbols trade in
    different zones (then give the dates with an offset) or the span is empty."""
    if start.tzinfo is None or end.tzinfo is None:
        zones = {symbol: client.resolve(symbol).time_zone for symbol in symbols}
        distinct = sorted(set(zones.values()))
        if len(distinct) > 1:
            listed = ", ".join(f"{symbol}: {zone}" for symbol, zone in zones.items())
            raise ConfigError(
                f"the symbols trade in different time zones ({listed}), so a date without a "
                "zone is ambiguous; give --from/--to with Z or an offset, e.g. "
                "2024-03-04T09:30-05:00"
            )
        zone = ZoneInfo(distinct[0]) if distinct else timezone.utc
        start = start if start.tzinfo is not None else start.replace(tzinfo=zone)
        end = end if end.tzinfo is not None else end.replace(tzinfo=zone)
    check_range(start, end)
    return start, end


def make_client(args: argparse.Namespace, **kwargs: Any) -> Any:
    """A GatewayClient for ``--gateway``/``--verify``.

    A command line should answer, not sit in IBKR's 10-minute penalty box: with
    ``rate_limit_retries=0`` a 429 fails at once, and so does every other request of the
    command that is queued or waiting then, or sent while the penalty lasts (the pacer does
    not wait out a penalty for a caller that would not retry a 429). The client shares the
    gateway's pacing budget with every other program on this machine, so commands run back
    to back never together exceed IBKR's limits. See :func:`rate_limited_message`.
    """
    from ..client.retry import RetryPolicy
    from ..gateway import GatewayClient

    kwargs.setdefault("retry", RetryPolicy(rate_limit_retries=0))
    return GatewayClient(args.gateway, verify=args.verify, **kwargs)


def rate_limited_message(exc: RateLimitExceeded, gateway: str | None = None) -> str:
    """The one line a command prints when the gateway rate limits it: that it was rate
    limited, for how long (the gateway's Retry-After, or IBKR's 10-15 minutes) and what to do.
    """
    where = f"the gateway at {gateway}" if gateway else "the gateway"
    after = exc.retry_after
    if after is None:
        how_long = "for about 10-15 minutes"
    else:
        seconds = max(1, round(after))
        minutes = f", about {round(seconds / 60)} min" if seconds >= 120 else ""
        how_long = f"for {seconds} s more (Retry-After{minutes})"
    return (
        f"rate limited by {where} (HTTP 429, IBKR's penalty box) {how_long}: wait that long "
        "before running another command, and close other programs using this gateway "
        "(backtests, scripts, other ibkr-cp commands) meanwhile"
    )


def print_table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], out: IO[str] | None = None
) -> None:
    """A plain left-aligned text table."""
    stream = out if out is not None else sys.stdout
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        stream.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        stream.write("\n")
        if index == 0:
            stream.write("  ".join("-" * w for w in widths) + "\n")


class Progress:
    """A one-line textual progress bar on stderr: ``AAPL 5min [#####.....] 6/12 requests``.

    Redraws in place on a terminal; elsewhere (a pipe, a log) it prints nothing until
    :meth:`done`, which prints one summary line either way. ``total`` 0 means unknown.
    """

    WIDTH = 30

    def __init__(self, label: str, total: int, stream: IO[str] | None = None) -> None:
        self.label = label
        self.total = total
        self.count = 0
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        isatty = getattr(self.stream, "isatty", None)
        self.interactive = bool(isatty and isatty())

    def step(self, n: int = 1) -> None:
        self.count += n
        if self.interactive:
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def _line(self) -> str:
        if self.total > 0:
            shown = min(self.count, self.total)
            filled = int(self.WIDTH * shown / self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            return f"{self.label} [{bar}] {shown}/{self.total} requests"
        return f"{self.label} {self.count} requests"

    def done(self, summary: str) -> None:
        seconds = time.monotonic() - self.started
        prefix = "\r" + " " * (len(self._line()) + 1) + "\r" if self.interactive else ""
        self.stream.write(f"{prefix}{summary} ({seconds:.1f} s)\n")
        self.stream.flush()
