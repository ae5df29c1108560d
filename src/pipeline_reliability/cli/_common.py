"""
What every command shares: the argument parser, the global options, exit
codes, the project a command acts on, opening (and checking) the state
store, and printing.

Exit codes (docs/reference/cli.md): 0 success; 1 the command ran and found a
problem or an operation failed; 2 the command was not run because its input
or environment is wrong (bad arguments, unknown phase, invalid date, no
project, missing credentials, a service that failed the reachability check,
a missing topic or table), so nothing was written; 130 interrupted; 141
stdout closed early. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any, NoReturn

from .._validate import duration_seconds, iso_date
from ..errors import ConfigurationError, InvalidInputError, ReliabilityError
from ..stores._probe import DEFAULT_PROBE_TIMEOUT, probe_store
from ..stores._protocol import StateStore

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Parser",
    "add_global_options",
    "announce",
    "connect_store",
    "connect_timeout",
    "describe_error",
    "emit_json",
    "emulator_note",
    "format_table",
    "one_line",
    "open_store",
    "parse_date",
    "parse_dates",
    "resolve_project",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what `cmd | head` reports for cat, git, ...

_PROJECT_VARS = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")
_WELL_FORMED = re.compile(r"\d{4}-\d{2}-\d{2}")
_LINE_LIMIT = 1000

class CliError(Exception):
    """A one-line error for the user, with the exit status to return."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises :class:`CliError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Report a usage error as one line (argparse would print usage and exit)."""
        raise CliError(f"{self.prog}: error: {message}", EXIT_USAGE)


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """
    Add ``--project``, ``--database``, ``--prefix`` and ``-v``.

    They are accepted before or after the command name, so every subparser
    gets them too (with ``SUPPRESS`` defaults, so a value given before the
    command is not overwritten by the subparser's default).
    """
    suppress = argparse.SUPPRESS
    parser.add_argument(
        "--project",
        default=suppress,
        help="Google Cloud project (default: the environment's, e.g. GOOGLE_CLOUD_PROJECT)",
    )
    parser.add_argument(
        "--database", default=suppress, help="Firestore database id (default: (default))"
    )
    parser.add_argument(
        "--prefix",
        default=suppress,
        help="prefix of every collection name, e.g. 'staging_' (default: none)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=suppress,
        help="log more (-v, -vv); the library's log goes to stderr, one line per record",
    )
    parser.add_argument(
        "--debug", action="store_true", default=suppress,
        help="print tracebacks (of the error and of the library's log records)",
    )
    parser.add_argument(
        "--connect-timeout", metavar="SECONDS", default=suppress,
        help=f"how long the reachability check before any work waits for Firestore, "
        f"Pub/Sub and BigQuery (default {DEFAULT_PROBE_TIMEOUT:g})",
    )


def global_option(args: argparse.Namespace, name: str) -> str | None:
    """Return a global option's value, ``None`` when not given."""
    value = getattr(args, name, None)
    return None if value is None else str(value)


def parse_date(text: str, what: str = "date") -> str:
    """
    Return ``text`` if it is an ISO date ``YYYY-MM-DD`` naming a real day.

    Raises:
        CliError: not of that form ("invalid date"), of that form but no
            calendar day such as ``2026-02-30`` ("no such date"), or outside
            the dates the library accepts.
    """
    try:
        return iso_date(text)
    except InvalidInputError as exc:
        if not _WELL_FORMED.fullmatch(text):
            raise CliError(f"invalid {what} {text!r}: expected YYYY-MM-DD") from exc
        try:
            _dt.date.fromisoformat(text)
        except ValueError:
            raise CliError(f"invalid {what} {text!r}: no such date") from exc
        raise CliError(f"invalid {what} {text!r}: {exc}") from exc


def parse_dates(texts: Iterable[str]) -> list[str]:
    """
    Parse dates and ranges: ``2026-01-31``, ``2026-01-01..2026-01-07``, or
    comma-separated lists of both. The result is sorted and unique.

    Raises:
        CliError: a date or range is invalid, or nothing was given.
    """
    out: set[str] = set()
    for text in texts:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if ".." in part:
                first, _, last = part.partition("..")
                start = _dt.date.fromisoformat(parse_date(first))
                end = _dt.date.fromisoformat(parse_date(last))
                if end < start:
                    raise CliError(f"invalid date range {part!r}: it ends before it starts")
                if (end - start).days > 3660:
                    raise CliError(f"date range {part!r} is longer than ten years")
                out.update(
                    (start + _dt.timedelta(days=i)).isoformat()
                    for i in range((end - start).days + 1)
                )
            else:
                out.add(parse_date(part))
    if not out:
        raise CliError("no dates given")
    return sorted(out)


def open_store(args: argparse.Namespace) -> StateStore:
    """
    Open the Firestore store named by the global options (no I/O yet).

    The emulator is used when ``FIRESTORE_EMULATOR_HOST`` is set. Tests may
    replace this function to run commands on another store.

    Raises:
        CliError: no project was given.
    """
    from ..stores.firestore import FirestoreStore

    store: StateStore = FirestoreStore(
        project=resolve_project(args),
        database=global_option(args, "database"),
        prefix=global_option(args, "prefix") or "",
    )
    return store


def resolve_project(args: argparse.Namespace) -> str:
    """
    The project a command acts on: ``--project``, else ``GOOGLE_CLOUD_PROJECT``
    or ``GCLOUD_PROJECT``. Never a guess (the credentials' default project
    or a library default): a command that writes must name its target.

    Raises:
        CliError: none of them is set (exit status 2).
    """
    for value in (global_option(args, "project"), *(os.environ.get(v) for v in _PROJECT_VARS)):
        if value:
            return value
    raise CliError(
        "no Google Cloud project given: pass --project or set GOOGLE_CLOUD_PROJECT"
    )


def connect_timeout(args: argparse.Namespace) -> float:
    """``--connect-timeout`` in seconds (default 5).

    Raises:
        CliError: not a positive number of seconds.
    """
    text = global_option(args, "connect_timeout")
    if text is None:
        return DEFAULT_PROBE_TIMEOUT
    try:
        return duration_seconds(float(text), "--connect-timeout")
    except (ValueError, ConfigurationError) as exc:
        raise CliError(f"--connect-timeout {text!r}: expected a positive number of seconds") \
            from exc


def connect_store(args: argparse.Namespace) -> StateStore:
    """
    Open the store, say on stderr which project and database it is, and
    check that it answers (within ``--connect-timeout``) before any work.

    Raises:
        CliError: no project, or the store did not answer (exit status 2:
            nothing was done).
    """
    timeout = connect_timeout(args)
    store = open_store(args)
    project = getattr(store, "project", None) or resolve_project(args)
    database = getattr(store, "database", None) or global_option(args, "database")
    prefix = global_option(args, "prefix")
    announce(f"project={project} database={database or '(default)'}"
             + (f" prefix={prefix}" if prefix else "")
             + emulator_note("FIRESTORE_EMULATOR_HOST"))
    try:
        probe_store(store, timeout)
    except ReliabilityError as exc:
        raise CliError(f"Firestore (project {project}): {describe_error(exc)}") from exc
    return store


def checked_topic(args: argparse.Namespace, label: str = "topic") -> tuple[str, str]:
    """``--topic`` as a full path and its project, once Pub/Sub said the topic exists."""
    from ..pubsub._admin import probe_topic

    project = resolve_project(args)
    try:
        topic = probe_topic(args.topic, project=project, timeout=connect_timeout(args))
    except ReliabilityError as exc:
        raise CliError(f"--topic: {describe_error(exc)}") from exc
    announce(f"{label}={topic}{emulator_note('PUBSUB_EMULATOR_HOST')}")
    return topic, project


def checked_bigquery(args: argparse.Namespace, tables: Iterable[str]) -> Any:
    """
    A BigQuery client, once BigQuery said every table exists.

    Tables without a project part are in the BigQuery client's default
    project (the environment's), which may differ from the Firestore project.
    """
    from ..sinks._admin import probe_bigquery
    from ..sinks._bigquery import make_client

    try:
        probe_bigquery(tables=list(tables), timeout=connect_timeout(args))
    except ReliabilityError as exc:
        raise CliError(f"BigQuery: {describe_error(exc)}") from exc
    return make_client()


def announce(text: str) -> None:
    """Print what the command acts on, as one line on stderr."""
    print(f"pipeline-reliability: {text}", file=sys.stderr)


def emulator_note(variable: str) -> str:
    """`` [emulator HOST]`` when ``variable`` points a client at an emulator, else ``""``."""
    host = os.environ.get(variable)
    return f" [emulator {host}]" if host else ""


def describe_error(exc: BaseException) -> str:
    """
    One line for ``exc``: missing credentials get a hint instead of a traceback.
    """
    for err in _chain(exc):
        name = type(err).__name__
        if name in {"DefaultCredentialsError", "RefreshError"}:
            return one_line(
                "no Google Cloud credentials found: run 'gcloud auth application-default "
                "login', set GOOGLE_APPLICATION_CREDENTIALS, or point "
                "FIRESTORE_EMULATOR_HOST/PUBSUB_EMULATOR_HOST/BIGQUERY_EMULATOR_HOST at "
                f"emulators ({err})"
            )
    if isinstance(exc, CliError):
        return one_line(str(exc))
    if isinstance(exc, ReliabilityError):
        return one_line(f"{type(exc).__name__}: {exc}")
    return one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def one_line(text: str, limit: int = _LINE_LIMIT) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def is_credentials_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything it chains) says credentials are missing."""
    return any(
        type(err).__name__ in {"DefaultCredentialsError", "RefreshError"} for err in _chain(exc)
    )


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def emit_json(value: Any, out: IO[str] | None = None) -> None:
    """Print ``value`` as indented, key-sorted JSON (dates and sets made JSON-safe)."""
    json.dump(value, out or sys.stdout, indent=2, sort_keys=True, default=_json_default)
    (out or sys.stdout).write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Render rows as a plain-text table with left-aligned, padded columns."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
