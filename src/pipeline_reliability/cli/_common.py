"""
What every command shares: the argument parser, the global options, exit
codes, opening the state store, and printing.

Exit codes: 0 success; 1 the command ran and found a problem (a violated
invariant, a failed operation); 2 the command was not run because its input
or environment is wrong (bad arguments, unknown phase, invalid date, missing
table, missing credentials). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any, NoReturn

from .._validate import iso_date
from ..errors import ConfigurationError, InvalidInputError, ReliabilityError
from ..stores._protocol import StateStore

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "Parser",
    "add_global_options",
    "emit_json",
    "format_table",
    "open_store",
    "parse_date",
    "parse_dates",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

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
        help="log more (-v, -vv); the library's log goes to stderr",
    )


def global_option(args: argparse.Namespace, name: str) -> str | None:
    """Return a global option's value, ``None`` when not given."""
    value = getattr(args, name, None)
    return None if value is None else str(value)


def parse_date(text: str) -> str:
    """
    Return ``text`` if it is an ISO date ``YYYY-MM-DD``.

    Raises:
        CliError: not a valid calendar date.
    """
    try:
        return iso_date(text)
    except InvalidInputError as exc:
        raise CliError(f"invalid date {text!r}: expected YYYY-MM-DD") from exc


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
    Open the Firestore store named by the global options.

    The emulator is used when ``FIRESTORE_EMULATOR_HOST`` is set. Tests may
    replace this function to run commands on another store.

    Raises:
        CliError: the Google libraries are not installed, or there are no
            credentials.
    """
    from ..stores.firestore import FirestoreStore

    kwargs: dict[str, Any] = {}
    if global_option(args, "project") is not None:
        kwargs["project"] = global_option(args, "project")
    if global_option(args, "database") is not None:
        kwargs["database"] = global_option(args, "database")
    if global_option(args, "prefix") is not None:
        kwargs["prefix"] = global_option(args, "prefix")
    store: StateStore = FirestoreStore(**kwargs)
    return store


def describe_error(exc: BaseException) -> str:
    """
    One line for ``exc``: missing credentials get a hint instead of a traceback.
    """
    for err in _chain(exc):
        name = type(err).__name__
        if name in {"DefaultCredentialsError", "RefreshError"}:
            return (
                "no Google Cloud credentials found: run 'gcloud auth application-default "
                "login', set GOOGLE_APPLICATION_CREDENTIALS, or point "
                "FIRESTORE_EMULATOR_HOST/PUBSUB_EMULATOR_HOST/BIGQUERY_EMULATOR_HOST at "
                f"emulators ({err})".replace("\n", " ")
            )
    text = f"{type(exc).__name__}: {exc}" if isinstance(exc, ReliabilityError) else str(exc)
    return " ".join(text.split())


def is_credentials_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything it chains) says credentials are missing."""
    return any(
        type(err).__name__ in {"DefaultCredentialsError", "RefreshError"} for err in _chain(exc)
    )


def is_input_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the user's input being rejected (exit status 2)."""
    return isinstance(exc, InvalidInputError | ConfigurationError | CliError)


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
