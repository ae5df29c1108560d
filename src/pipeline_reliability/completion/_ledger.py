"""
The fallback ledger contract (DESIGN F2) and the execution-log contract.

When the state store cannot take a completion, the tracker appends it to a
ledger (BigQuery in production: ``pipeline_reliability.sinks.BigQueryLedger``)
and reports the result as degraded; ``replay_ledger`` later brings the store
to the ledger's state. ``MemoryLedger`` is the embedded implementation.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from ..errors import InvalidInputError
from ._spec import encode_metadata, normalise_date, validate_name, validate_text

__all__ = [
    "MAX_INT64",
    "CompletionLedger",
    "ExecutionLog",
    "ExecutionLogRow",
    "LedgerRow",
    "MemoryExecutionLog",
    "MemoryLedger",
    "check_execution_row",
    "check_ledger_row",
]

#: The largest integer every sink holds (Firestore and BigQuery INTEGER are int64).
MAX_INT64 = 2**63 - 1
_MAX_SECONDS = 1e15


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """
    One completion as written to the fallback ledger.

    ``primary_ok`` is ``False`` when the row stands in for a failed store
    write (and must be replayed), ``True`` when it only mirrors one.
    ``event_time`` is when the tracker took the report (its own clock);
    ``completed_at`` is the processor's completion time, if it gave one, and
    is what orders the runs of a processor when the row is replayed.
    """

    phase: str
    date: str
    processor: str
    execution_id: str
    status: str
    event_time: datetime
    recorded_time: datetime
    primary_ok: bool
    message_id: str | None = None
    record_count: int | None = None
    metadata: Mapping[str, Any] | None = None
    correlation_id: str | None = None
    completed_at: datetime | None = None


def check_ledger_row(row: object) -> LedgerRow:
    """
    Return ``row`` if every field fits every sink it goes to, else raise.

    The checks ``record_completion`` makes of its input, plus what a row adds:
    safe names, a real date, ids of at most 512 characters, a ``record_count``
    within ``0..MAX_INT64`` (Firestore and BigQuery INTEGER are int64),
    metadata that is a JSON mapping of at most 64 KiB, timezone-aware times
    that BigQuery's TIMESTAMP can hold, a bool ``primary_ok``. Ledgers call it
    before writing; replay calls it on what it reads (rows written by older
    versions may not pass) and quarantines the rows that fail.

    Raises:
        InvalidInputError: the first field that does not fit (named).
    """
    if not isinstance(row, LedgerRow):
        raise InvalidInputError(f"a ledger row must be a LedgerRow, got {type(row).__name__}")
    validate_name(row.phase, "phase")
    normalise_date(row.date)
    validate_name(row.processor, "processor")
    validate_name(row.status, "status")
    validate_text(row.execution_id, "execution_id")
    validate_text(row.message_id, "message_id", optional=True)
    validate_text(row.correlation_id, "correlation_id", optional=True)
    check_count(row.record_count, "record_count")
    check_metadata(row.metadata)
    check_timestamp(row.event_time, "event_time")
    check_timestamp(row.recorded_time, "recorded_time")
    if row.completed_at is not None:
        check_timestamp(row.completed_at, "completed_at")
    if not isinstance(row.primary_ok, bool):
        raise InvalidInputError(f"primary_ok must be a bool, got {row.primary_ok!r:.80}")
    return row


def check_execution_row(row: object) -> ExecutionLogRow:
    """
    Return ``row`` if it fits the ``phase_execution_log`` table, else raise.

    Raises:
        InvalidInputError: the first field that does not fit (named).
    """
    if not isinstance(row, ExecutionLogRow):
        raise InvalidInputError(
            f"an execution-log row must be an ExecutionLogRow, got {type(row).__name__}"
        )
    validate_name(row.phase_name, "phase_name")
    normalise_date(row.game_date)
    validate_name(row.status, "status")
    validate_text(row.correlation_id, "correlation_id", optional=True)
    check_timestamp(row.execution_timestamp, "execution_timestamp")
    check_timestamp(row.start_time, "start_time")
    seconds: object = row.duration_seconds
    # 0 .. 1e15 s: a FLOAT64 that every consumer can also read as a duration.
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 <= seconds <= _MAX_SECONDS
        or not math.isfinite(seconds)
    ):
        raise InvalidInputError(
            f"duration_seconds must be a finite number within 0..1e15, got {seconds!r:.80}"
        )
    check_metadata(row.metadata)
    return row


def check_count(value: object, what: str) -> int | None:
    """Return ``value`` if it is ``None`` or an int within ``0..MAX_INT64``, else raise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT64:
        raise InvalidInputError(f"{what} must be an int within 0..2**63-1, got {value!r:.80}")
    return value


def check_metadata(value: object) -> None:
    """Raise unless ``value`` is ``None`` or a JSON mapping of at most 64 KiB."""
    if value is not None and not isinstance(value, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, got {type(value).__name__}")
    try:
        encode_metadata(value)
    except RecursionError as exc:  # self-referential or absurdly deep
        raise InvalidInputError("metadata is nested too deeply") from exc


def check_timestamp(value: object, what: str) -> datetime:
    """Return ``value`` if it is a timezone-aware datetime a TIMESTAMP column holds."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be a timezone-aware datetime, got {value!r:.80}")
    try:
        # BigQuery TIMESTAMP: 0001-01-01 .. 9999-12-31 UTC; an offset can push past either end.
        value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInputError(f"{what} {value!r} is outside 0001..9999 in UTC") from exc
    return value


@runtime_checkable
class CompletionLedger(Protocol):
    """Append-only storage for completions that the state store could not take."""

    def append(self, row: LedgerRow) -> None:
        """
        Append one row durably.

        Raises:
            InvalidInputError: the row cannot be stored (see
                ``check_ledger_row``); nothing was written.
            SinkError: the row was not written (the caller must then raise).
        """
        ...

    def read(self, phase: str, dates: Sequence[str]) -> list[LedgerRow]:
        """Return every row of ``phase`` for ``dates``, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class ExecutionLogRow:
    """One confirmed phase trigger, as written to ``phase_execution_log``."""

    execution_timestamp: datetime
    phase_name: str
    game_date: str
    start_time: datetime
    duration_seconds: float
    status: str
    correlation_id: str | None = None
    metadata: Mapping[str, Any] | None = None


@runtime_checkable
class ExecutionLog(Protocol):
    """Where confirmed triggers are logged (BigQuery ``phase_execution_log``)."""

    def write(self, row: ExecutionLogRow) -> None:
        """Write one row (raises ``SinkError`` on failure)."""
        ...


@dataclass
class MemoryLedger:
    """A :class:`CompletionLedger` in process memory (tests, ``simulate``)."""

    rows: list[LedgerRow] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def append(self, row: LedgerRow) -> None:
        """Append one row (``InvalidInputError`` if it cannot be stored)."""
        check_ledger_row(row)
        with self._lock:
            self.rows.append(row)

    def read(self, phase: str, dates: Sequence[str]) -> list[LedgerRow]:
        """Return the rows of ``phase`` for ``dates`` in append order."""
        wanted = set(dates)
        with self._lock:
            return [r for r in self.rows if r.phase == phase and r.date in wanted]


@dataclass
class MemoryExecutionLog:
    """An :class:`ExecutionLog` in process memory."""

    rows: list[ExecutionLogRow] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write(self, row: ExecutionLogRow) -> None:
        """Keep one row (``InvalidInputError`` if it cannot be stored)."""
        check_execution_row(row)
        with self._lock:
            self.rows.append(row)
