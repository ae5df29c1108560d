"""
Processor run history: one row per completion report the tracker handled.

History is observability. The tracker hands each row to ``RunHistory.record``
after the store decided the report, and nothing a history does may fail,
block or slow the completion: implementations return at once (the shipped
ones append to memory, or to a bounded buffer that a background thread
drains, see :class:`BufferedRunHistory`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = [
    "Deployment",
    "MemoryRunHistory",
    "RunHistory",
    "RunHistoryRow",
    "deployment_from_env",
]


@dataclass(frozen=True, slots=True)
class Deployment:
    """
    Which deployment handled a report, from the platform's standard variables.

    Attributes:
        service: ``K_SERVICE`` (Cloud Run service, Cloud Functions 2nd gen),
            else ``CLOUD_RUN_JOB`` (Cloud Run job), else ``FUNCTION_NAME``
            (Cloud Functions 1st gen).
        revision: ``K_REVISION``, else ``CLOUD_RUN_EXECUTION``, else
            ``X_GOOGLE_FUNCTION_VERSION``.
        function_target: ``FUNCTION_TARGET`` (the function's entry point).

    .. versionadded:: 0.2.0
    """

    service: str | None = None
    revision: str | None = None
    function_target: str | None = None


def deployment_from_env(environ: Mapping[str, str] | None = None) -> Deployment:
    """
    Read :class:`Deployment` from ``environ`` (default ``os.environ``, read now).

    The tracker calls it once, on its first history row, never at import.

    .. versionadded:: 0.2.0
    """
    env = os.environ if environ is None else environ

    def first(*names: str) -> str | None:
        for name in names:
            value = env.get(name)
            if value:
                return value[:256]  # bounded: it is stored in every row
        return None

    return Deployment(
        service=first("K_SERVICE", "CLOUD_RUN_JOB", "FUNCTION_NAME"),
        revision=first("K_REVISION", "CLOUD_RUN_EXECUTION", "X_GOOGLE_FUNCTION_VERSION"),
        function_target=first("FUNCTION_TARGET"),
    )


@dataclass(frozen=True, slots=True)
class RunHistoryRow:
    """
    One completion report, as the tracker handled it.

    Attributes:
        phase, date, processor, execution_id, status: The report, normalised.
        outcome: ``counted``, ``updated``, ``recorded`` (a status that does
            not count), ``duplicate``, ``stale``, ``ignored`` (a name the
            phase does not expect) or ``degraded`` (went to the ledger).
        received_at: When the tracker took the report (its clock).
        completed_at: When the run finished, by the processor (``None``
            when it gave no time).
        record_count, message_id, correlation_id: As reported.
        done_count / expected_count: The date's done count after this report
            and the size of its expected set (``None`` when degraded).
        trigger_state: The trigger's state after this report (``None`` when degraded).
        replayed: ``replay_ledger`` applied this row from the fallback ledger.
        backfill: Recorded with ``trigger=False``.
        error: The store error, when degraded.
        tracker_owner: The tracker instance (its ``owner``).
        library_version: This library's version.
        deployment: The Cloud Run / Cloud Functions service and revision.

    .. versionadded:: 0.2.0
    """

    phase: str
    date: str
    processor: str
    execution_id: str
    status: str
    outcome: str
    received_at: datetime
    completed_at: datetime | None = None
    record_count: int | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    done_count: int | None = None
    expected_count: int | None = None
    trigger_state: str | None = None
    replayed: bool = False
    backfill: bool = False
    error: str | None = None
    tracker_owner: str | None = None
    library_version: str | None = None
    deployment: Deployment = Deployment()


@runtime_checkable
class RunHistory(Protocol):
    """
    Where the tracker sends a :class:`RunHistoryRow` for every completion report.

    ``record`` must return at once and never raise for a row it cannot
    keep: count it and drop it (the tracker logs and swallows what it raises
    anyway, but a ``record`` that blocks delays the completion).

    .. versionadded:: 0.2.0
    """

    def record(self, row: RunHistoryRow) -> None:
        """Take ``row`` (at once; never blocks)."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for taken rows to be written; ``True`` if all were."""
        ...

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop taking rows; ``True`` if everything taken was written."""
        ...


class MemoryRunHistory:
    """
    A :class:`RunHistory` in memory, for tests and the embedded demo (unbounded).

    .. versionadded:: 0.2.0
    """

    def __init__(self) -> None:
        self._rows: list[RunHistoryRow] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryRunHistory({len(self._rows)} rows)"

    @property
    def rows(self) -> tuple[RunHistoryRow, ...]:
        """Every row taken, in order."""
        with self._lock:
            return tuple(self._rows)

    def record(self, row: RunHistoryRow) -> None:
        """Keep ``row``."""
        with self._lock:
            self._rows.append(row)

    def flush(self, timeout: float | None = None) -> bool:  # noqa: ARG002 - nothing to wait for
        """Nothing is pending: ``True``."""
        return True

    def close(self, timeout: float | None = None) -> bool:  # noqa: ARG002 - nothing to wait for
        """Nothing is pending: ``True``."""
        return True
