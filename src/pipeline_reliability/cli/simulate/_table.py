"""
An in-memory stand-in for the BigQuery output table and its fenced MERGE
upsert, so that ``simulate`` runs without BigQuery (with ``--emulators`` the
real :class:`~pipeline_reliability.dedup.BigQueryWriter` is used instead).

It behaves like a ``MERGE`` whose source was *not* deduplicated would: a
key new to the table is inserted once per source row (duplicates land in the
table), and a key that matches several source rows fails the statement, as
BigQuery's "must match at most one source row" does. So the simulation's
table only stays clean when the rows really went through dedup first.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from ...errors import WriteFailedError
from ...lock import FenceGuard

__all__ = ["MemoryTable"]

Key = tuple[Hashable, ...]


class MemoryTable:
    """
    A thread-safe table with a MERGE-like, fenced upsert.

    Args:
        key: The key columns.
        order_by: The column that decides which row is newer.
    """

    def __init__(self, key: Sequence[str], order_by: str) -> None:
        self.key = tuple(key)
        self.order_by = order_by
        self.fence = FenceGuard()
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []

    def upsert(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        fence: int | None = None,
        fence_key: Hashable = None,
    ) -> tuple[int, int]:
        """
        Merge ``rows`` into the table; returns (inserted, updated).

        Raises:
            StaleFenceError: ``fence`` is older than a token that already
                wrote under ``fence_key``; nothing is written.
            WriteFailedError: a table row matches several source rows.
        """
        with self._lock:
            if fence is not None:
                # Checked and applied under one lock, as a MERGE would check a
                # token column in the same statement.
                self.fence.check(fence, key=fence_key)
            index: dict[Key, list[int]] = {}
            for i, existing in enumerate(self._rows):
                index.setdefault(self._key(existing), []).append(i)
            source = Counter(self._key(r) for r in rows)
            clash = [k for k, n in source.items() if n > 1 and k in index]
            if clash:
                raise WriteFailedError(
                    f"MERGE: a target row matched {source[clash[0]]} source rows (key {clash[0]})"
                )
            inserted = updated = 0
            for row in rows:
                found = index.get(self._key(row))
                if not found:
                    self._rows.append(dict(row))
                    inserted += 1
                    continue
                for i in found:
                    if row[self.order_by] >= self._rows[i][self.order_by]:
                        self._rows[i] = dict(row)
                        updated += 1
            return inserted, updated

    def rows(self) -> list[dict[str, Any]]:
        """A copy of every row."""
        with self._lock:
            return [dict(r) for r in self._rows]

    def duplicate_keys(self) -> dict[Key, int]:
        """Keys held by more than one row, with their counts."""
        with self._lock:
            counts = Counter(self._key(r) for r in self._rows)
        return {k: n for k, n in counts.items() if n > 1}

    def _key(self, row: Mapping[str, Any]) -> Key:
        return tuple(row.get(k) for k in self.key)
