"""
Dates for the operator commands: positional dates and ranges, ``--from/--to``,
or the phase's "today and yesterday" in its time zone; walked with a progress
bar on a terminal and at a bounded rate (``--rate`` dates per second), so a
backfill over a season does not hammer Firestore or BigQuery.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, TypeVar

from ..completion import PhaseSpec
from ._common import CliError, parse_date, parse_dates

__all__ = ["DEFAULT_RATE", "Progress", "add_range_options", "dates_of", "paced"]

T = TypeVar("T")
DEFAULT_RATE = 5.0  # dates per second
MAX_RATE = 100.0


def add_range_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--from``, ``--to`` and ``--rate``."""
    parser.add_argument("--from", dest="date_from", metavar="DATE",
                        help="first date of a range (with --to)")
    parser.add_argument("--to", dest="date_to", metavar="DATE",
                        help="last date of a range (with --from)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, metavar="N",
                        help=f"at most N dates per second (default {DEFAULT_RATE:g}, "
                        f"at most {MAX_RATE:g})")


def dates_of(
    args: argparse.Namespace,
    spec: PhaseSpec,
    given: Sequence[str],
    *,
    now: Callable[[], datetime] | None = None,
) -> list[str]:
    """
    The dates a command works on, sorted.

    Positional dates/ranges and ``--from/--to`` add up; with neither, the
    phase's "today and yesterday" in its time zone (``PhaseSpec.recent_dates``).

    Raises:
        CliError: a bad date or range, ``--from`` without ``--to`` (or the
            reverse), or a bad ``--rate``.
    """
    rate(args)
    first, last = getattr(args, "date_from", None), getattr(args, "date_to", None)
    texts = list(given)
    if (first is None) != (last is None):
        raise CliError("--from and --to go together")
    if first is not None and last is not None:
        texts.append(f"{parse_date(first, '--from date')}..{parse_date(last, '--to date')}")
    if not texts:
        return sorted(spec.recent_dates((now or utc_now)()))
    return parse_dates(texts)


def utc_now() -> datetime:
    """The current time (a module function, so tests can replace it)."""
    return datetime.now(UTC)


def rate(args: argparse.Namespace) -> float:
    """``--rate``, checked."""
    value = getattr(args, "rate", DEFAULT_RATE)
    if not isinstance(value, float | int) or not 0 < value <= MAX_RATE:
        raise CliError(f"--rate must be within (0, {MAX_RATE:g}] dates per second")
    return float(value)


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not one."""

    def __init__(self, total: int, label: str, stream: IO[str] | None = None) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = total > 1 and bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0

    def step(self, item: str) -> None:
        """Count one item done and redraw."""
        self.done += 1
        if not self.enabled:
            return
        width = 30
        filled = width * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {item}")
        if self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def paced(
    items: Sequence[T],
    per_second: float,
    progress: Progress,
    *,
    monotonic: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Iterator[T]:
    """Yield ``items``, starting each at least ``1/per_second`` after the previous one."""
    monotonic = monotonic or time.monotonic
    sleep = sleep or time.sleep
    interval = 1.0 / per_second
    last: float | None = None
    for item in items:
        if last is not None:
            wait = last + interval - monotonic()
            if wait > 0:
                sleep(wait)
        last = monotonic()
        yield item
        progress.step(str(item))
