"""
Issue 10, item 2: a completion that is valid on its own is always recorded;
the (phase, date) document stays under a bound that depends only on the
number of expected processors, on MemoryStore and on the Firestore emulator.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline_reliability import StateStore
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.completion._bounds import (
    FIRESTORE_MAX_DOC_BYTES,
    firestore_size,
    max_doc_bytes,
)
from pipeline_reliability.completion._claims import MAX_AUDIT
from pipeline_reliability.completion._doc import (
    INLINE_METADATA_BYTES,
    MAX_EXECUTIONS,
    MAX_IGNORED,
    MAX_IGNORED_EXECUTIONS,
    MAX_MESSAGES,
)
from pipeline_reliability.completion._spec import MAX_EXPECTED, MAX_METADATA_BYTES
from pipeline_reliability.errors import ConfigurationError
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
T = datetime(2026, 1, 31, 6, tzinfo=UTC)
WIDE = "\U0001d11e"  # 4 bytes in UTF-8: the longest ids in bytes


def metadata_of(size: int, seed: str) -> dict[str, Any]:
    """A metadata object whose compact JSON is exactly ``size`` bytes."""
    base = {"seed": seed, "pad": ""}
    overhead = len(json.dumps(base, separators=(",", ":")))
    return {"seed": seed, "pad": "x" * (size - overhead)}


def test_item2_twenty_processors_with_60kb_metadata_are_all_recorded(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    """The issue's case: 20 x 60 KB of metadata; the 17th was refused before."""
    names = [f"proc{i:02d}" for i in range(20)]
    tracker = CompletionTracker(backend, [PhaseSpec("p3", names)], clock=fake_clock)

    results = [
        tracker.record_completion(
            "p3", DATE, n, execution_id="r1", metadata=metadata_of(60_000, n)
        )
        for n in names
    ]

    assert [r.count for r in results] == list(range(1, 21))
    assert results[-1].trigger is not None
    status = tracker.status("p3", DATE)
    assert status.records["proc16"].metadata == metadata_of(60_000, "proc16")
    assert status.records["proc16"].metadata_digest is not None


def test_item2_bound_fits_firestore_for_the_largest_phase_allowed() -> None:
    """The stated bound (FIXED + n * PER_EXPECTED) stays under 1 MiB up to MAX_EXPECTED."""
    assert max_doc_bytes(MAX_EXPECTED) < FIRESTORE_MAX_DOC_BYTES
    with pytest.raises(ConfigurationError, match="at most 50"):
        PhaseSpec("p", [f"p{i}" for i in range(MAX_EXPECTED + 1)])


@pytest.mark.slow
def test_item2_worst_case_document_stays_under_the_bound(
    backend: StateStore, fake_clock: FakeClock
) -> None:
    """
    MAX_EXPECTED processors with 128-character names; each re-run until its id
    ring is full, its last run with the longest ids and the largest metadata
    (inline or not); the message ring full; more unknown names than are kept,
    each with more runs than are kept; a trigger claimed by a long owner and
    released with a long error. Every completion is recorded, and the
    document measures under the stated bound.
    """
    names = [f"{i:03d}" + "p" * 125 for i in range(MAX_EXPECTED)]
    spec = PhaseSpec("p3", names)
    owner = WIDE * 256
    tracker = CompletionTracker(backend, [spec], clock=fake_clock, owner=owner)
    long_id = WIDE * 512
    for i, name in enumerate(names):
        for run in range(MAX_EXECUTIONS):
            tracker.record_completion(
                "p3",
                DATE,
                name,
                execution_id=f"{i:03d}-{run:02d}".ljust(64, "e"),
                message_id=f"{i:03d}-{run:02d}".ljust(64, "m"),
                status="failed",
                completed_at=T + timedelta(seconds=run),
            )
        size = INLINE_METADATA_BYTES if i % 2 else MAX_METADATA_BYTES
        last = tracker.record_completion(
            "p3",
            DATE,
            name,
            execution_id=long_id[:-1] + str(i % 10),
            message_id=long_id[:-4] + f"{i:04d}",
            record_count=2**63 - 1,
            correlation_id=long_id,
            metadata=metadata_of(size, name),
            completed_at=T + timedelta(hours=1),
        )
        assert last.updated or last.counted
    for j in range(MAX_IGNORED + 5):
        for run in range(MAX_IGNORED_EXECUTIONS + 1):
            tracker.record_completion(
                "p3", DATE, f"u{j:03d}" + "x" * 124, execution_id=long_id[:-3] + f"{run:03d}"
            )
    assert last.trigger is not None
    assert tracker.release_trigger(last.trigger, WIDE * 5000)
    # Operator actions fill the audit ring with the longest texts (issue 11).
    claim = tracker.sweep("p3", [DATE]).claims[0]
    for _ in range(MAX_AUDIT + 2):
        tracker.confirm_trigger(claim)
        claim = tracker.rearm_trigger("p3", DATE, WIDE * 512, by=WIDE * 512)
    tracker.set_expected("p3", DATE, names, reason=WIDE * 512, by=WIDE * 512)
    assert tracker.release_trigger(claim, WIDE * 5000)

    doc = backend.get(spec.collection, DATE).data
    assert doc is not None
    size = firestore_size(doc) + 32 + len(spec.collection) + 1 + len(DATE) + 1 + 16
    assert len(doc["messages"]) == MAX_MESSAGES
    assert len(doc["ignored"]) == MAX_IGNORED
    assert len(doc["audit"]) == MAX_AUDIT
    assert doc["meta"]["ignored_dropped"] == 5 * (MAX_IGNORED_EXECUTIONS + 1)
    assert size <= max_doc_bytes(MAX_EXPECTED) < FIRESTORE_MAX_DOC_BYTES
    assert size > 0.8 * max_doc_bytes(MAX_EXPECTED)  # the case is close to the worst
    status = tracker.status("p3", DATE)
    assert status.count == MAX_EXPECTED
    assert status.records[names[0]].metadata == metadata_of(MAX_METADATA_BYTES, names[0])
