"""
The processors' table writes under a fleet-wide ``ConcurrencyLimit``.

BigQuery admits a bounded number of concurrent DML statements per table; in
production each instance's ``BigQueryWriter(concurrency=...)`` holds a slot
around its MERGE. Here every worker thread (an instance) has its own limit
object, all sharing one limit document in the run's store, and the count of
writers *inside* the critical section is taken from inside it, so the
invariant ``dml_limit_respected`` sees what really ran at once.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from ..._clock import SystemClock
from ...limits import ConcurrencyLimit
from ...stores._protocol import StateStore

__all__ = ["DML_LIMIT_NAME", "LimitedTable"]

DML_LIMIT_NAME = "bigquery-dml:simulate.output"


class _Table(Protocol):
    """The table written to (``_components.TableSink``, which wires this wrapper in)."""

    def upsert(
        self, rows: Sequence[Mapping[str, Any]], *, fence: int | None = ...,
        fence_key: Hashable = ...,
    ) -> tuple[int, int]: ...

    def rows(self) -> list[dict[str, Any]]: ...


class LimitedTable:
    """
    A table sink whose upserts each hold a slot of one limit.

    Args:
        inner: The table written to.
        store: Where the limit lives (the run's shared store).
        limit: Writers admitted at once.
    """

    def __init__(self, inner: _Table, store: StateStore, limit: int) -> None:
        self.inner = inner
        self.store = store
        self.limit = limit
        self._lock = threading.Lock()
        self._limits: dict[int, ConcurrencyLimit] = {}
        self.inside = 0
        self.peak = 0
        self.entries = 0
        self.overruns = 0

    def _for_this_thread(self) -> ConcurrencyLimit:
        ident = threading.get_ident()
        with self._lock:
            found = self._limits.get(ident)
            if found is None:
                found = self._limits[ident] = ConcurrencyLimit(
                    DML_LIMIT_NAME, self.store, limit=self.limit,
                    owner=f"simulate-writer-{len(self._limits)}",
                    # Leases run on the store's (simulated) time, which stands
                    # still within a tick; waiting uses real time so that it
                    # never moves the simulated clock (seeded runs repeat).
                    lease=timedelta(hours=1), clock=SystemClock(),
                    max_wait=timedelta(minutes=2),
                )
            return found

    def upsert(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        fence: int | None = None,
        fence_key: Hashable = None,
    ) -> tuple[int, int]:
        """The inner upsert, inside a slot; counts the writers inside."""
        with self._for_this_thread().slot():
            with self._lock:
                self.inside += 1
                self.entries += 1
                self.peak = max(self.peak, self.inside)
                if self.inside > self.limit:
                    self.overruns += 1
            try:
                return self.inner.upsert(rows, fence=fence, fence_key=fence_key)
            finally:
                with self._lock:
                    self.inside -= 1

    def rows(self) -> list[dict[str, Any]]:
        """Every row of the inner table."""
        return self.inner.rows()

    def slots_left(self) -> bool:
        """Whether the limit's document still lists slots (all should be given back)."""
        return self.store.get("concurrency_limits", DML_LIMIT_NAME).data is not None
