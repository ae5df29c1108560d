"""
The fallback ledger contract (DESIGN F2) and the execution-log contract.

When the state store cannot take a completion, the tracker appends it to a
ledger (BigQuery in production: ``pipeline_reliability.sinks.BigQueryLedger``)
and reports the result as degraded; ``replay_ledger`` later brings the store
to the ledger's state. ``MemoryLedger`` is the embedded implementation.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CompletionLedger",
    "ExecutionLog",
    "ExecutionLogRow",
    "LedgerRow",
    "MemoryExecutionLog",
    "MemoryLedger",
]


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


@runtime_checkable
class CompletionLedger(Protocol):
    """Append-only storage for completions that the state store could not take."""

    def append(self, row: LedgerRow) -> None:
        """
        Append one row durably.

        Raises:
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
        """Append one row."""
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
        """Keep one row."""
        with self._lock:
            self.rows.append(row)
