"""PhaseSpec validation at construction, and input validation before anything is written."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from tracker_helpers import DATE, EXPECTED, FIRST, PHASE, MakeTracker

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.errors import ConfigurationError, InvalidInputError


def test_spec_defaults() -> None:
    """A spec needs only a name and the expected set; defaults are the documented ones."""
    spec = PhaseSpec("phase3", ["a", "b"])

    assert frozenset({"a", "b"}) == spec.expected
    assert spec.collection == "completion_phase3"
    assert frozenset({"success", "partial"}) == spec.counts_statuses
    assert spec.min_to_trigger is None
    assert timedelta(minutes=5) == spec.trigger_lease
    assert "reconciled" in spec.done_statuses


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expected": []}, "must not be empty"),
        ({"expected": "abc"}, "collection of names"),
        ({"critical": {"z"}, "min_to_trigger": 1}, "critical but not expected"),
        ({"critical": {"a"}}, "only applies with min_to_trigger"),
        ({"min_to_trigger": 0}, "within 1..2"),
        ({"min_to_trigger": 3}, "within 1..2"),
        ({"min_to_trigger": True}, "within 1..2"),
        ({"deadline": timedelta(0)}, "deadline must be a finite, positive"),
        ({"trigger_lease": timedelta(seconds=-1)}, "trigger_lease must be a finite, positive"),
        ({"expected": ["a/b"]}, "expected processor"),
        ({"expected": ["a.b"]}, "expected processor"),
        ({"expected": ["__a__"]}, "expected processor"),
        ({"name": "phase:3"}, "phase name"),
        ({"next_phase": "next phase"}, "next_phase"),
        ({"collection": "a/b"}, "collection"),
        ({"counts_statuses": []}, "counts_statuses must not be empty"),
    ],
)
def test_spec_rejects_bad_configuration(kwargs: dict[str, Any], message: str) -> None:
    """Every unworkable option raises ConfigurationError at construction."""
    args: dict[str, Any] = {"name": "phase3", "expected": ["a", "b"], **kwargs}

    with pytest.raises(ConfigurationError, match=message):
        PhaseSpec(args.pop("name"), args.pop("expected"), **args)


def test_tracker_rejects_duplicate_phases_and_collections(memory_store: MemoryStore) -> None:
    """Two phases with the same name or collection would share documents: refused."""
    with pytest.raises(ConfigurationError):
        CompletionTracker(memory_store, [PhaseSpec("p", ["a"]), PhaseSpec("p", ["b"])])
    with pytest.raises(ConfigurationError):
        CompletionTracker(
            memory_store,
            [PhaseSpec("p", ["a"], collection="c"), PhaseSpec("q", ["b"], collection="c")],
        )
    with pytest.raises(ConfigurationError):
        CompletionTracker(memory_store, [])


BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("unknown phase", {"phase": "phase9"}),
    ("bad date format", {"date": "2026-1-31"}),
    ("invalid calendar date", {"date": "2026-02-30"}),
    ("datetime instead of date", {"date": datetime(2026, 1, 31)}),
    ("date not a string", {"date": 20260131}),
    ("slash in processor", {"processor": "a/b"}),
    ("dot in processor", {"processor": "a.b"}),
    ("reserved processor", {"processor": "__name__"}),
    ("empty processor", {"processor": ""}),
    ("empty execution id", {"execution_id": ""}),
    ("non-JSON metadata", {"metadata": {"when": datetime(2026, 1, 31)}}),
    ("NaN metadata", {"metadata": {"x": float("nan")}}),
    ("int metadata key", {"metadata": {1: "a"}}),
    ("oversize metadata", {"metadata": {"blob": "x" * (64 * 1024)}}),
    ("metadata not a mapping", {"metadata": ["a"]}),
    ("unknown status", {"status": "sucess"}),
    ("negative record count", {"record_count": -1}),
    ("bool record count", {"record_count": True}),
    ("empty message id", {"message_id": ""}),
]


@pytest.mark.parametrize(("case", "override"), BAD_INPUTS, ids=[c for c, _ in BAD_INPUTS])
def test_bad_input_raises_before_anything_is_written(
    tracker: CompletionTracker, memory_store: MemoryStore, case: str, override: dict[str, Any]
) -> None:
    """Each kind of bad input raises InvalidInputError and leaves the store untouched."""
    args: dict[str, Any] = {
        "phase": PHASE,
        "date": DATE,
        "processor": FIRST,
        "execution_id": "run-1",
        **override,
    }

    with pytest.raises(InvalidInputError):
        tracker.record_completion(
            args.pop("phase"), args.pop("date"), args.pop("processor"), **args
        )

    assert memory_store.stats.transactions == 0
    assert memory_store.dump() == {}


def test_date_objects_and_configured_statuses_are_accepted(make_tracker: MakeTracker) -> None:
    """A datetime.date is normalised, and a status the spec configures is valid."""
    spec = PhaseSpec(
        PHASE, EXPECTED, counts_statuses={"success", "done"}, done_empty_statuses={"no_data"}
    )
    tracker = make_tracker(phases=[spec])

    result = tracker.record_completion(
        PHASE, date(2026, 1, 31), FIRST, execution_id="r", status="done"
    )

    assert (result.date, result.counted) == (DATE, True)


def test_metadata_of_any_json_shape_round_trips(tracker: CompletionTracker) -> None:
    """Nested arrays (which a Firestore document cannot hold) are kept, as JSON text."""
    metadata = {"entities_changed": [["lebron-james", 1]], "pct": 12.5, "none": None}

    tracker.record_completion(
        PHASE,
        DATE,
        FIRST,
        execution_id="r",
        metadata=metadata,
        record_count=3,
        correlation_id="abcd1234",
    )
    record = tracker.status(PHASE, DATE).records[FIRST]

    assert metadata == record.metadata
    assert (record.record_count, record.correlation_id) == (3, "abcd1234")
