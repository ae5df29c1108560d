"""
The ``pipeline-reliability`` command.

``simulate`` is the main job: a chaos game day of a two-phase pipeline on the
embedded store (or on the emulators) that ends with ``invariants: N checked,
0 violated``. The operator commands (``status``, ``sweep``, ``reconcile``,
``replay``, ``breaker``, ``lock``, ``bootstrap``) work on a real project with
the usual Google credentials, or on emulators through ``*_EMULATOR_HOST``.

Exit status: 0 success, 1 a problem found or an operation failed, 2 bad
input or environment (one line on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence

from ._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    Parser,
    add_global_options,
    describe_error,
    is_credentials_error,
    is_input_error,
)

__all__ = ["build_parser", "main"]

_PROG = "pipeline-reliability"
logger = logging.getLogger("pipeline_reliability.cli")


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every command (each subparser sets ``handler``)."""
    from . import _bootstrap, _breaker, _lock, _simulate, _tracker

    parser = Parser(
        prog=_PROG,
        description="Reliable fan-in, breakers, locks and dedup for GCP data pipelines: "
        "run the chaos simulation, or inspect and repair a pipeline's state.",
    )
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    _simulate.register(commands)
    _tracker.register(commands)
    _breaker.register(commands)
    _lock.register(commands)
    _bootstrap.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Never raises for expected failures: they are printed as one line on
    stderr. ``--help`` returns 0.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.status
    except SystemExit as exc:  # --help and --version end parsing this way
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    verbosity = int(getattr(args, "verbose", 0))
    with _logging_to_stderr(verbosity, int(getattr(args, "log_floor", logging.WARNING))):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        status: int = args.handler(args)
    except CliError as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except Exception as exc:
        if is_credentials_error(exc) or is_input_error(exc):
            # The command could not run as asked (bad input or environment):
            # one line, exit 2, and nothing was written.
            print(f"{_PROG}: error: {describe_error(exc)}", file=sys.stderr)
            return EXIT_USAGE
        # Anything else failed while running: say what in one line, keep the
        # traceback for -v (never swallow it silently).
        logger.info("command failed", exc_info=exc)
        print(f"{_PROG}: error: {describe_error(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return status


class _StderrHandler(logging.Handler):
    """Write records to whatever ``sys.stderr`` is at the time (pytest swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int, floor: int) -> Iterator[None]:
    """
    Log the package to stderr at ``floor`` (WARNING; ``simulate`` raises it
    because it injects failures on purpose), one level lower per ``-v``.

    The logger is restored afterwards: ``main`` also runs inside other
    programs (and tests), whose logging must not change.
    """
    package = logging.getLogger("pipeline_reliability")
    saved_level, saved_propagate = package.level, package.propagate
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package.addHandler(handler)
    package.setLevel(max(logging.DEBUG, floor - 10 * verbosity))
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved_level)
        package.propagate = saved_propagate
