"""
Issue 10, item 9: hostile values given to every public constructor and method
of the tracker and of completion-message parsing. Only ``ReliabilityError``
subclasses may escape, and nothing is written when a call is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import (
    CompletionTracker,
    LedgerRow,
    MemoryLedger,
    PhaseSpec,
    TriggerClaim,
)
from pipeline_reliability.errors import ConfigurationError, InvalidInputError, ReliabilityError
from pipeline_reliability.pubsub import CompletionMessage, parse_completion_message
from pipeline_reliability.testing import FakeClock

DATE = "2026-01-31"
EXPECTED = ("a", "b")


def _self_referential_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


def _self_referential_list() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


def _deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def _wide_dag(levels: int) -> Any:
    value: list[Any] = []
    for _ in range(levels):
        value = [value, value]  # shared children: 2**levels leaves when expanded
    return value


class _Weird:
    def __repr__(self) -> str:
        raise RuntimeError("repr fails")


OFFSETS = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
HOSTILE: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**400, -1, 0, 2**64]),
    st.floats(),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "x" * 10_000,
            "\ud800",
            "a/b",
            "__x__",
            "9999-12-31",
            "0001-01-01",
            "2026-02-30",
            DATE,
            "a",
            "success",
        ]
    ),
    st.binary(max_size=20),
    st.datetimes(),
    st.datetimes(timezones=OFFSETS),
    st.sampled_from(
        [
            datetime.max,
            datetime.min,
            datetime.max.replace(tzinfo=UTC),
            datetime.min.replace(tzinfo=UTC),
            datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-5))),
        ]
    ),
    st.dates(),
    st.sampled_from([date.max, date.min, date(9999, 12, 31)]),
    st.timedeltas(),
    st.sampled_from([timedelta.max, timedelta.min, timedelta(0), timedelta(microseconds=1)]),
    st.builds(_self_referential_dict),
    st.builds(_self_referential_list),
    st.builds(_deep, st.sampled_from([65, 10_000])),
    st.builds(lambda: {"m": _deep(10_000)}),
    st.builds(lambda: {"m": _wide_dag(60)}),
    st.builds(lambda: {"n": 10**400}),
    st.builds(lambda: {1: "int key"}),
    st.builds(lambda: {"f": float("nan")}),
    st.builds(lambda: {"s": {1, 2}}),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.builds(object),
    st.builds(_Weird),
)


def _tracker(**options: Any) -> tuple[CompletionTracker, MemoryStore, MemoryLedger]:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    ledger = MemoryLedger()
    tracker = CompletionTracker(store, [PhaseSpec("p", EXPECTED)], ledger, clock, **options)
    return tracker, store, ledger


def _only_reliability_errors(store: MemoryStore, call: Callable[[], Any]) -> Any:
    """Run ``call``: it succeeds, or raises a ReliabilityError having written nothing."""
    writes = store.stats.writes
    try:
        return call()
    except ReliabilityError:
        assert store.stats.writes == writes
        return None


def _publish(event: Any) -> None:
    """A publisher that accepts every event."""


SPEC_OPTIONS = (
    "name",
    "expected",
    "collection",
    "counts_statuses",
    "done_empty_statuses",
    "min_to_trigger",
    "critical",
    "deadline",
    "trigger_lease",
    "next_phase",
)


@given(option=st.sampled_from(SPEC_OPTIONS), value=HOSTILE)
def test_phase_spec_options(option: str, value: Any) -> None:
    """PhaseSpec builds, or raises a ReliabilityError (ConfigurationError)."""
    args: dict[str, Any] = {"name": "p", "expected": EXPECTED, option: value}
    with contextlib.suppress(ReliabilityError):
        PhaseSpec(**args)


TRACKER_OPTIONS = ("store", "phases", "ledger", "clock", "execution_log", "owner", "retry")


@given(option=st.sampled_from(TRACKER_OPTIONS), value=HOSTILE)
def test_tracker_options(option: str, value: Any) -> None:
    """CompletionTracker builds, or raises a ReliabilityError, before any call."""
    args: dict[str, Any] = {"store": MemoryStore(), "phases": [PhaseSpec("p", EXPECTED)]}
    args[option] = value
    with contextlib.suppress(ReliabilityError):
        CompletionTracker(**args)


RECORD_ARGS = (
    "phase",
    "date",
    "processor",
    "execution_id",
    "message_id",
    "status",
    "record_count",
    "metadata",
    "correlation_id",
    "completed_at",
)


@given(arg=st.sampled_from(RECORD_ARGS), value=HOSTILE, and_trigger=st.booleans())
def test_record_completion_arguments(arg: str, value: Any, and_trigger: bool) -> None:
    """record_completion / record_and_trigger with one hostile argument."""
    tracker, store, _ = _tracker()
    args: dict[str, Any] = {
        "phase": "p",
        "date": DATE,
        "processor": "a",
        "execution_id": "r1",
        arg: value,
    }
    if and_trigger:
        _only_reliability_errors(
            store, lambda: tracker.record_and_trigger(**args, publish=_publish)
        )
    else:
        _only_reliability_errors(store, lambda: tracker.record_completion(**args))


@given(value=HOSTILE)
def test_record_and_trigger_publish(value: Any) -> None:
    """A publish that is not callable is refused before the completion is recorded."""
    tracker, store, _ = _tracker()
    tracker.record_completion("p", DATE, "a", execution_id="r1")

    _only_reliability_errors(
        store,
        lambda: tracker.record_and_trigger("p", DATE, "b", execution_id="r1", publish=value),
    )


@given(arg=st.sampled_from(["phase", "date"]), value=HOSTILE)
def test_status(arg: str, value: Any) -> None:
    """status with a hostile phase or date."""
    tracker, store, _ = _tracker()
    args: dict[str, Any] = {"phase": "p", "date": DATE, arg: value}

    _only_reliability_errors(store, lambda: tracker.status(**args))


@given(
    arg=st.sampled_from(["phase", "dates", "now", "one_date", "publish"]),
    value=HOSTILE,
    and_trigger=st.booleans(),
)
def test_sweep(arg: str, value: Any, and_trigger: bool) -> None:
    """sweep / sweep_and_trigger with a hostile phase, dates, date in the list, now or publish."""
    tracker, store, _ = _tracker()
    args: dict[str, Any] = {"phase": "p", "dates": [DATE], "now": None}
    if arg == "one_date":
        args["dates"] = [DATE, value]
    elif arg != "publish":
        args[arg] = value
    if and_trigger or arg == "publish":
        publish = value if arg == "publish" else _publish
        _only_reliability_errors(store, lambda: tracker.sweep_and_trigger(**args, publish=publish))
    else:
        _only_reliability_errors(store, lambda: tracker.sweep(**args))


@given(arg=st.sampled_from(["phase", "dates", "one_date", "publish"]), value=HOSTILE)
def test_replay_ledger(arg: str, value: Any) -> None:
    """replay_ledger / replay_and_trigger with hostile arguments (one row in the ledger)."""
    tracker, store, ledger = _tracker()
    now = datetime(2026, 1, 31, tzinfo=UTC)
    ledger.append(LedgerRow("p", DATE, "a", "r1", "success", now, now, False))
    args: dict[str, Any] = {"phase": "p", "dates": [DATE]}
    if arg == "one_date":
        args["dates"] = [value, DATE]
    elif arg != "publish":
        args[arg] = value
    if arg == "publish":
        _only_reliability_errors(store, lambda: tracker.replay_and_trigger(**args, publish=value))
    else:
        _only_reliability_errors(store, lambda: tracker.replay_ledger(**args))


@given(arg=st.sampled_from(["phase", "date", "evidence", "publish"]), value=HOSTILE)
def test_reconcile(arg: str, value: Any) -> None:
    """reconcile / reconcile_and_trigger with hostile arguments."""
    tracker, store, _ = _tracker()
    args: dict[str, Any] = {"phase": "p", "date": DATE, "evidence": {"a": True, "b": True}}
    if arg == "publish":
        _only_reliability_errors(
            store, lambda: tracker.reconcile_and_trigger(**args, publish=value)
        )
        return
    args[arg] = value
    if arg == "evidence" and (isinstance(value, dict) or callable(value)):
        return  # the caller's own evidence: its errors are the caller's (documented)
    _only_reliability_errors(store, lambda: tracker.reconcile(**args))


CLAIM_FIELDS = tuple(f.name for f in dataclasses.fields(TriggerClaim))


@given(
    field=st.sampled_from(("claim", "error", *CLAIM_FIELDS)),
    value=HOSTILE,
    confirm=st.booleans(),
)
def test_confirm_and_release_trigger(field: str, value: Any, confirm: bool) -> None:
    """confirm_trigger / release_trigger with a hostile claim, claim field or error."""
    tracker, store, _ = _tracker()
    tracker.record_completion("p", DATE, "a", execution_id="r1")
    claim: Any = tracker.record_completion("p", DATE, "b", execution_id="r1").trigger
    assert claim is not None
    error: Any = "publish failed"
    if field == "claim":
        claim = value
    elif field == "error":
        error = value
    else:
        claim = dataclasses.replace(claim, **{field: value})
    if confirm:
        _only_reliability_errors(store, lambda: tracker.confirm_trigger(claim))
    else:
        _only_reliability_errors(store, lambda: tracker.release_trigger(claim, error))


BODY: dict[str, Any] = {
    "processor_name": "a",
    "phase": "phase_3",
    "execution_id": "r1",
    "game_date": DATE,
    "status": "success",
    "timestamp": "2026-01-31T06:00:00Z",
}


@given(
    where=st.sampled_from(
        ("message", "body", "message.message", "data", "data.message", *BODY, "metadata")
    ),
    value=HOSTILE,
)
def test_parse_completion_message(where: str, value: Any) -> None:
    """parse_completion_message with a hostile message or field; what parses also records."""
    message: Any
    if where == "message":
        message = value
    elif where == "message.message":
        message = {"message": value, "subscription": "s"}
    elif where == "data":
        message = {"data": value, "messageId": "m1"}
    elif where == "data.message":
        message = {"data": {"message": value}}
    elif where == "body":
        message = {**BODY, "message": value}
    else:
        message = {**BODY, where: value}
    tracker, store, _ = _tracker()
    try:
        parsed = parse_completion_message(message)
    except ReliabilityError:
        return
    _only_reliability_errors(
        store, lambda: tracker.record_completion("p", **parsed.completion_kwargs())
    )
    parsed.to_dict()


MESSAGE_FIELDS = tuple(f.name for f in dataclasses.fields(CompletionMessage))


@given(field=st.sampled_from(MESSAGE_FIELDS), value=HOSTILE)
def test_completion_message(field: str, value: Any) -> None:
    """CompletionMessage built by hand: it refuses bad fields, or its methods work."""
    fields: dict[str, Any] = {
        "processor_name": "a",
        "phase": "phase_3",
        "execution_id": "r1",
        "correlation_id": "c1",
        "game_date": DATE,
        "status": "success",
        "record_count": None,
        "metadata": {},
        "timestamp": None,
        "message_id": None,
        field: value,
    }
    tracker, store, _ = _tracker()
    try:
        message = CompletionMessage(**fields)
    except ReliabilityError:
        return
    message.to_dict()
    _only_reliability_errors(
        store, lambda: tracker.record_completion("p", **message.completion_kwargs())
    )


# -- the cases the issue names, as plain regression tests -----------------------


def test_item9_self_referential_and_deep_metadata_are_invalid_input() -> None:
    """Item 9: these raised RecursionError (or hung); now InvalidInputError, nothing written."""
    tracker, store, _ = _tracker()
    for metadata in (_self_referential_dict(), {"m": _deep(10_000)}, {"m": _wide_dag(60)}):
        try:
            tracker.record_completion("p", DATE, "a", execution_id="r1", metadata=metadata)
        except InvalidInputError:
            continue
        raise AssertionError(f"accepted {type(metadata)}")
    assert store.stats.writes == 0


def test_item9_the_last_dates_are_invalid_input_everywhere() -> None:
    """Item 9: status/sweep/recording an unknown processor on 9999-12-31 raised OverflowError."""
    tracker, store, _ = _tracker()
    calls: list[Callable[[], Any]] = [
        lambda: tracker.status("p", "9999-12-31"),
        lambda: tracker.sweep("p", ["9999-12-31"]),
        lambda: tracker.record_completion("p", "9999-12-31", "unknown", execution_id="r"),
        lambda: tracker.record_completion("p", date.max, "a", execution_id="r"),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError, match="outside"):
            call()
    assert store.stats.writes == 0


@pytest.mark.parametrize("option", ["deadline", "trigger_lease"])
@pytest.mark.parametrize("value", [timedelta.max, timedelta(days=36_501)])
def test_item9_absurd_phase_durations_are_configuration_errors(
    option: str, value: timedelta
) -> None:
    """Item 9: PhaseSpec(deadline=timedelta.max) was accepted and overflowed later."""
    options: dict[str, Any] = {option: value}
    with pytest.raises(ConfigurationError, match=option):
        PhaseSpec("p", EXPECTED, **options)


def test_item9_record_count_beyond_int64_is_refused_up_front() -> None:
    """A count no sink can hold (2**63) is refused before the store or the ledger sees it."""
    tracker, store, ledger = _tracker()
    with pytest.raises(InvalidInputError, match="record_count"):
        tracker.record_completion("p", DATE, "a", execution_id="r", record_count=2**63)
    tracker.record_completion("p", DATE, "a", execution_id="r", record_count=2**63 - 1)
    assert (store.stats.writes, ledger.rows) == (1, [])
