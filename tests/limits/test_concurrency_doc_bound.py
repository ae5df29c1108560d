"""The limit's one document stays far below Firestore's 1 MiB at its worst case."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pipeline_reliability import MemoryStore
from pipeline_reliability.limits import (
    MAX_CONCURRENCY_LIMIT,
    MAX_CONCURRENCY_WAITERS,
    ConcurrencyLimit,
)
from pipeline_reliability.limits._slots import MAX_OWNER_BYTES, Holder, LimitDoc, Ticket
from pipeline_reliability.stores._values import MAX_DOCUMENT_BYTES, normalise_document
from pipeline_reliability.testing import FakeClock

NOW = datetime(2026, 1, 31, tzinfo=UTC)
LONGEST_OWNER = "\U0001f600" * (MAX_OWNER_BYTES // 4)  # 4 UTF-8 bytes each


def firestore_size(value: object) -> int:
    """Firestore's documented storage size of a field value (strings: UTF-8 bytes + 1)."""
    if isinstance(value, dict):
        return sum(len(k.encode()) + 1 + firestore_size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(firestore_size(v) for v in value)
    if isinstance(value, str):
        return len(value.encode()) + 1
    return 8  # integers, timestamps


def worst_case() -> dict[str, object]:
    end = NOW + timedelta(minutes=5)
    holders = {
        uuid.uuid4().hex: Holder(LONGEST_OWNER, NOW, end) for _ in range(MAX_CONCURRENCY_LIMIT)
    }
    queue = [
        Ticket(uuid.uuid4().hex, LONGEST_OWNER, NOW, end) for _ in range(MAX_CONCURRENCY_WAITERS)
    ]
    write = LimitDoc(holders, queue, pruned=False).write("n" * 1500, MAX_CONCURRENCY_LIMIT)
    return dict(write.data)  # type: ignore[union-attr]


def test_worst_case_document_fits_firestores_1_mib_with_a_third_to_spare() -> None:
    """1000 holders + 1000 waiters, each with a 256-byte owner, and a 1500-byte name."""
    data = worst_case()
    assert len(data["holders"]) == MAX_CONCURRENCY_LIMIT  # type: ignore[arg-type]
    # Firestore's own formula (document name of ~1.6 KB and 32 bytes of overhead added):
    # about 674 000 bytes, i.e. 64 % of the limit.
    assert firestore_size(data) + 1_700 + 32 < MAX_DOCUMENT_BYTES * 2 // 3
    normalise_document(data)  # the stores' own (larger) estimate accepts it too


def test_owner_longer_than_the_bound_is_refused_and_the_bound_fits() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit("n", MemoryStore(clock=clock), limit=1, owner=LONGEST_OWNER,
                             clock=clock)
    assert limit.acquire(timeout=0).held
