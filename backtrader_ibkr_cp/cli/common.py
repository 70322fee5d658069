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

from ..errors import ConfigError
from ..models import Timeframe
from ..models.timeframe import BT_DAYS, BT_MINUTES, BT_MONTHS, BT_WEEKS

__all__ = [
    "BAR_HELP",
    "DEFAULT_GATEWAY",
    "ENV_GATEWAY",
    "Progress",
    "add_gateway_options",
    "bar_name",
    "make_client",
    "parse_date",
    "parse_timeframe",
    "parse_verify",
    "print_table",
]

#: The gateway a command talks to when neither --gateway nor $IBKR_GATEWAY_URL says otherwise.
DEFAULT_GATEWAY = "https://localhost:5000"
#: Environment variable with the default gateway URL.
ENV_GATEWAY = "IBKR_GATEWAY_URL"

_DATE_HELP = "YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]; dates without a zone are UTC"


def parse_date(text: str) -> datetime:
    """``"2024-02-01"`` -> 2024-02-01 00:00 UTC; an ISO date-time keeps its offset (UTC when it
    has none). Raises ``argparse.ArgumentTypeError`` naming the accepted forms."""
    value = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use {_DATE_HELP} (e.g. 2024-02-01)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


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
    parser.add_argument(
        "--from", dest="start", metavar="DATE", type=parse_date, required=required,
        help=f"first bar start, inclusive ({_DATE_HELP})",
    )  # fmt: skip
    parser.add_argument(
        "--to", dest="end", metavar="DATE", type=parse_date, required=required,
        help="end, exclusive (bars starting before it)",
    )  # fmt: skip


def check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ConfigError(
            f"--to {end.isoformat()} is not after --from {start.isoformat()}; give a later --to"
        )


def make_client(args: argparse.Namespace, **kwargs: Any) -> Any:
    """A GatewayClient for ``--gateway``/``--verify``.

    A command line should answer, not sit in IBKR's 10-minute penalty box: a 429 fails at
    once with the gateway's Retry-After in the message (``rate_limit_retries=0``).
    """
    from ..client.retry import RetryPolicy
    from ..gateway import GatewayClient

    kwargs.setdefault("retry", RetryPolicy(rate_limit_retries=0))
    return GatewayClient(args.gateway, verify=args.verify, **kwargs)


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
