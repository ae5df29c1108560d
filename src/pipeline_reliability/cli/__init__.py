"""
The ``pipeline-reliability`` command.

``simulate`` is the main job: a chaos game day of a two-phase pipeline on the
embedded store (or on the emulators) that ends with ``invariants: N checked,
0 violated``. The operator commands (``status``, ``sweep``, ``reconcile``,
``replay``, ``day``, ``report``, ``watch``, ``breaker``, ``lock``, ``bootstrap``) work on a
real project withthe usual Google credentials, or on emulators through ``*_EMULATOR_HOST``.

Every error ends here, in :func:`_run`: one line ``pipeline-reliability:
error: ...`` on stderr and the exit status of docs/reference/cli.md (0 done,
1 a problem found or an operation failed, 2 bad input or environment and
nothing done, 130 interrupted, 141 stdout closed early); ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence

from ..errors import ConfigurationError, EmulatorError, InvalidInputError, ReliabilityError
from ._common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
    Parser,
    add_global_options,
    describe_error,
    is_credentials_error,
    one_line,
)

__all__ = ["build_parser", "exit_status", "main"]

_PROG = "pipeline-reliability"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every command (each subparser sets ``handler``)."""
    from . import _bootstrap, _breaker, _day, _lock, _operate, _simulate, _tracker, _watch

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
    _day.register(commands)
    _operate.register(commands)
    _breaker.register(commands)
    _lock.register(commands)
    _bootstrap.register(commands)
    _watch.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Never raises: every failure is printed as one line on stderr (with
    ``--debug``, after its traceback). ``--help`` returns 0.
    """
    try:
        parser = build_parser()
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.status
    except SystemExit as exc:  # --help and --version end parsing this way
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    verbosity = int(getattr(args, "verbose", 0))
    with _logging_to_stderr(verbosity, int(getattr(args, "log_floor", logging.WARNING)), debug):
        return _run(args, debug)


def exit_status(exc: BaseException) -> int:
    """
    The exit status for a command that failed with ``exc``.

    2 when the command could not run as asked (bad input, bad options, no
    project, no credentials, an emulator that cannot start, an unreachable
    service at the check before any work): nothing was written. 1 for every
    other failure.
    """
    if isinstance(exc, CliError):
        return exc.status
    usage = InvalidInputError | ConfigurationError | EmulatorError
    if is_credentials_error(exc) or isinstance(exc, usage):
        return EXIT_USAGE
    return EXIT_FAILED


def _run(args: argparse.Namespace, debug: bool) -> int:
    try:
        status: int = args.handler(args)
        # Flushed here, not at interpreter exit, so a closed pipe is seen below.
        sys.stdout.flush()
    except BrokenPipeError:
        # `... | head` closed stdout: stop quietly, as cat and git do.
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns any failure into a line
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        message = describe_error(exc)
        if not isinstance(exc, ReliabilityError | CliError) and not debug:
            message += " (unexpected: run again with --debug for the traceback)"
        print(f"{_PROG}: error: {message}", file=sys.stderr)
        return exit_status(exc)
    return status


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # not a real file (an embedding program's stream): nothing will flush it


class _StderrHandler(logging.Handler):
    """Write records to whatever ``sys.stderr`` is at the time (pytest swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


class _OneLine(logging.Formatter):
    """``LEVEL logger: message`` on one line: no traceback (``--debug`` shows them)."""

    def format(self, record: logging.LogRecord) -> str:
        return one_line(f"{record.levelname} {record.name}: {record.getMessage()}")


def _no_failures(record: logging.LogRecord) -> bool:
    # A record with an exception is a failure the library also raised or
    # reported: the command reports it in its own output or error line.
    return record.exc_info is None


@contextlib.contextmanager
def _logging_to_stderr(verbosity: int, floor: int, debug: bool) -> Iterator[None]:
    """
    Log the package to stderr at ``floor`` (WARNING; ``simulate`` raises it
    because it injects failures on purpose), one level lower per ``-v``.

    Without ``-v`` records that carry an exception are left out; records are
    one line each; ``--debug`` logs everything, tracebacks included. The
    logger is restored afterwards: ``main`` also runs inside other programs
    (and tests), whose logging must not change.
    """
    package = logging.getLogger("pipeline_reliability")
    saved_level, saved_propagate = package.level, package.propagate
    handler = _StderrHandler()
    if debug:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_OneLine())
        if verbosity == 0:
            handler.addFilter(_no_failures)
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if debug else max(logging.DEBUG, floor - 10 * verbosity))
    package.propagate = False
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved_level)
        package.propagate = saved_propagate
