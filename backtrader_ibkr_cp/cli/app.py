"""``ibkr-cp``: the command line. ``main(argv) -> exit code``.

Exit codes: 0 success, 1 failure (the gateway, the network, the data), 2 usage (bad
arguments or settings), 130 interrupted, 141 output closed early (``ibkr-cp bars ... | head``:
nothing is printed, as for any Unix tool killed by SIGPIPE). Errors are one line on stderr
saying what to do; ``--debug`` adds the traceback, ``--verbose`` turns on logging (``-vv`` for
debug logs).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import IO, Any, NoReturn

from ..errors import ConfigError, MarketError, RateLimitExceeded

__all__ = ["build_parser", "main"]

PROG = "ibkr-cp"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: 128 + SIGPIPE: the reader of stdout went away (``| head``).
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``ibkr-cp bars: error: ... (see ibkr-cp bars --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common_options(suppress: bool) -> argparse.ArgumentParser:
    """``--verbose``/``--debug``, accepted before and after the subcommand. In subcommands
    their default is SUPPRESS so they do not reset a value given before the subcommand."""
    p = argparse.ArgumentParser(add_help=False)
    default: Any = argparse.SUPPRESS if suppress else 0
    p.add_argument(
        "-v", "--verbose", action="count", default=default,
        help="log what happens (stdlib logging to stderr; -vv for debug)",
    )  # fmt: skip
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS if suppress else False,
        help="show the full traceback of an error",
    )  # fmt: skip
    return p


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__
    from .demo_cmd import add_demo
    from .gateway_cmds import add_bars, add_search, add_status
    from .record_cmd import add_plugins, add_record
    from .simulate_cmd import add_simulate
    from .store_cmds import add_store

    parser = _Parser(
        prog=PROG,
        parents=[_common_options(False)],
        description="Interactive Brokers Client Portal Gateway tools for backtrader: check a "
        "gateway, search contracts, download bars, record cassettes, run the gateway "
        "simulator and a demo.",
        epilog="Run 'ibkr-cp COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}",
        help="print the version of backtrader_ibkr_cp and exit",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    parents = [_common_options(True)]
    add_status(sub, parents)
    add_search(sub, parents)
    add_bars(sub, parents)
    add_store(sub, parents)
    add_record(sub, parents)
    add_simulate(sub, parents)
    add_demo(sub, parents)
    add_plugins(sub, parents)
    return parser


def _setup_logging(verbosity: int) -> None:
    if verbosity <= 0:
        return
    logging.basicConfig(
        level=logging.DEBUG if verbosity > 1 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _report(exc: BaseException, debug: bool, err: IO[str], message: str | None = None) -> None:
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
    err.write(f"error: {_one_line(message or str(exc)) or type(exc).__name__}\n")
    err.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ibkr-cp`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    _setup_logging(int(getattr(args, "verbose", 0) or 0))
    err = sys.stderr
    try:
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        _report(_translated(exc), debug, err)
        return EXIT_USAGE
    except RateLimitExceeded as exc:
        from .common import rate_limited_message

        _report(exc, debug, err, rate_limited_message(exc, getattr(args, "gateway", None)))
        return EXIT_FAILURE
    except MarketError as exc:
        _report(exc, debug, err)
        return EXIT_FAILURE
    except Exception as exc:
        mapped = _translated(exc)
        if mapped is not exc:
            _report(mapped, debug, err)
            return EXIT_USAGE
        if debug:
            _report(exc, debug, err)
        else:
            err.write(
                f"error: {_one_line(str(exc)) or 'no message'} (unexpected "
                f"{type(exc).__name__}: run again with --debug for the traceback)\n"
            )
        return EXIT_FAILURE


def _silence_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so nothing (not even the flush at
    exit) writes to the closed pipe again and Python prints no "Broken pipe" message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


def _translated(exc: BaseException) -> BaseException:
    from ..cassettes import translate_cassette_error

    return translate_cassette_error(exc) or exc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
