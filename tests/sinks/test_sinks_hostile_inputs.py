"""
Hostile options and arguments for the BigQuery sinks and the Pub/Sub trigger
publisher: only ``ReliabilityError`` subclasses escape, and a rejected call
never touches the client (issue 10, item 9). No emulator: validation runs
before any I/O.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_reliability.completion import ExecutionLogRow, LedgerRow
from pipeline_reliability.completion._ledger import check_execution_row, check_ledger_row
from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
    ReliabilityError,
)
from pipeline_reliability.pubsub import PubSubTriggerPublisher
from pipeline_reliability.retry import RetryPolicy
from pipeline_reliability.sinks import (
    BigQueryExecutionLog,
    BigQueryLedger,
    BigQueryWriter,
    bigquery_output_counts,
)
from pipeline_reliability.testing import FakeClock


class Deep(list[Any]):
    """3000 nested lists (with a short repr, so a failing example can be printed)."""

    def __repr__(self) -> str:
        return "Deep()"


class SelfRef(dict[str, Any]):
    """A mapping that contains itself (with a short repr)."""

    def __repr__(self) -> str:
        return "SelfRef()"


SELF = SelfRef()
SELF["self"] = SELF
DEEP = Deep()
_node: list[Any] = DEEP
for _ in range(3000):
    _node.append([])
    _node = _node[0]

HOSTILE: list[Any] = [
    0, -1, 1, 0.5, math.nan, math.inf, -math.inf, 10**400, 2**63, -(2**63) - 1, 1e308,
    timedelta(0), timedelta(seconds=-1), timedelta.max, timedelta.min, timedelta(hours=1),
    True, False, None, "", "x", "a/b", "ds.t", "p.ds.t", "no_dataset", "x" * 2000,
    b"ds.t", [], {}, [1], {"k": 1}, object(), SELF, DEEP,
    date.max, date(2026, 1, 31), "2026-01-31", "9999-12-31",
    datetime(2026, 1, 31), datetime(9999, 12, 31, 23, tzinfo=UTC),
]
hostile = st.sampled_from(HOSTILE)


class Untouchable:
    """A client that records any use: validation must reject before touching it."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.used.append(name)

        def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError(f"client.{name} called")

        return unreachable


def _only_ours(call: Any) -> BaseException | None:
    try:
        call()
    except ReliabilityError as exc:
        return exc
    return None


def _options(names: tuple[str, ...]) -> Any:
    return st.dictionaries(st.sampled_from(names), hostile, max_size=len(names))


# --- constructors ------------------------------------------------------------

LEDGER_OPTIONS = ("retry", "timeout")
WRITER_OPTIONS = (
    "project", "retry", "staging_dataset", "fence_table", "replay_window", "clock"
)
PUBLISHER_OPTIONS = ("project", "timeout", "retry", "publisher")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=hostile, opts=_options(LEDGER_OPTIONS))
def test_ledger_and_execution_log_constructors(table: Any, opts: dict[str, Any]) -> None:
    """BigQueryLedger / BigQueryExecutionLog: built, or ConfigurationError; no client used."""
    for cls in (BigQueryLedger, BigQueryExecutionLog):
        client = Untouchable()
        error = _only_ours(lambda cls=cls, client=client: cls(table, client, **opts))
        assert error is None or isinstance(error, ConfigurationError)
        assert client.used == []


@settings(max_examples=200, deadline=None)
@given(opts=_options(WRITER_OPTIONS))
def test_writer_constructor(opts: dict[str, Any]) -> None:
    """BigQueryWriter: built, or ConfigurationError; no client used."""
    client = Untouchable()
    error = _only_ours(lambda: BigQueryWriter(client, **opts))
    assert error is None or isinstance(error, ConfigurationError)
    assert client.used == []


@settings(max_examples=200, deadline=None)
@given(topic=hostile, opts=_options(PUBLISHER_OPTIONS))
def test_publisher_constructor(topic: Any, opts: dict[str, Any]) -> None:
    """PubSubTriggerPublisher: built, or ConfigurationError."""
    error = _only_ours(lambda: PubSubTriggerPublisher(topic, **opts))
    assert error is None or isinstance(error, ConfigurationError)


@pytest.mark.parametrize(
    "opts",
    [{"retry": 3}, {"retry": "fast"}, {"clock": "now"}, {"project": 5},
     {"staging_dataset": 7}, {"replay_window": math.nan}],
    ids=["retry-int", "retry-str", "clock", "project", "staging", "window"],
)
def test_item9_writer_options_of_the_wrong_type_are_refused(opts: dict[str, Any]) -> None:
    """These used to be accepted and fail later (AttributeError, or a bogus id)."""
    with pytest.raises(ConfigurationError):
        BigQueryWriter(Untouchable(), **opts)


@pytest.mark.parametrize("opts", [{"retry": 3}, {"project": 5}, {"project": "a/b"}])
def test_item9_publisher_options_of_the_wrong_type_are_refused(opts: dict[str, Any]) -> None:
    """A retry that is no policy, or a project that is no id, fails at construction."""
    with pytest.raises(ConfigurationError):
        PubSubTriggerPublisher("topic-name", **opts)


# --- upsert arguments ----------------------------------------------------------

UPSERT_ARGS = (
    "key", "order_by", "keep", "fence", "partition_date", "partition_column", "null_keys",
    "request_id",
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=hostile, rows=hostile, args=_options(UPSERT_ARGS))
def test_upsert_arguments(table: Any, rows: Any, args: dict[str, Any]) -> None:
    """upsert with hostile arguments: only our errors; a rejection never used the client."""
    client = Untouchable()
    writer = BigQueryWriter(
        client, project="proj", clock=FakeClock(), retry=RetryPolicy(attempts=1)
    )
    args.setdefault("key", "id")

    error = _only_ours(lambda: writer.upsert(table, rows, **args))

    if isinstance(error, InvalidInputError | ConfigurationError):
        assert client.used == []


@pytest.mark.parametrize(
    "args",
    [{"partition_column": 5}, {"partition_column": "a b"}, {"request_id": 5},
     {"request_id": ""}, {"request_id": "x" * 513}],
    ids=["column-int", "column-space", "request-int", "request-empty", "request-long"],
)
def test_item9_upsert_checks_names_before_any_client_call(args: dict[str, Any]) -> None:
    """partition_column and request_id are checked before the table is even looked up."""
    client = Untouchable()
    writer = BigQueryWriter(client, project="proj")

    with pytest.raises(InvalidInputError):
        writer.upsert("ds.t", [{"id": 1}], key="id", **args)
    assert client.used == []


@pytest.mark.parametrize("table", ["no_dataset", 5, None, "a/b.c", "ds.t t"])
def test_upsert_table_is_an_input_error(table: Any) -> None:
    """A malformed table id passed to upsert is a call argument: InvalidInputError."""
    with pytest.raises(InvalidInputError):
        BigQueryWriter(Untouchable(), project="proj").upsert(table, [{"id": 1}], key="id")


# --- replace_partition arguments (issue 11, item 5) -------------------------------

REBUILD_ARGS = (
    "key", "order_by", "keep", "fence", "partition_column", "null_keys", "request_id",
    "allow_empty",
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=hostile, day=hostile, rows=hostile, args=_options(REBUILD_ARGS))
def test_item5_replace_partition_arguments(
    table: Any, day: Any, rows: Any, args: dict[str, Any]
) -> None:
    """replace_partition, hostile arguments: only our errors; a rejection never used the client."""
    client = Untouchable()
    writer = BigQueryWriter(
        client, project="proj", clock=FakeClock(), retry=RetryPolicy(attempts=1)
    )
    args.setdefault("key", "id")

    error = _only_ours(lambda: writer.replace_partition(table, day, rows, **args))

    if isinstance(error, InvalidInputError | ConfigurationError):
        assert client.used == []


@pytest.mark.parametrize(
    "args",
    [{"partition_column": 5}, {"request_id": ""}, {"allow_empty": 1}, {"allow_empty": None},
     {"fence": object()}, {"null_keys": "report"}],
    ids=["column-int", "request-empty", "allow-empty-int", "allow-empty-none", "fence",
         "null-keys-report"],
)
def test_item5_replace_partition_checks_arguments_before_any_client_call(
    args: dict[str, Any],
) -> None:
    """Each option is checked before the table is looked up: InvalidInputError, client unused."""
    client = Untouchable()

    with pytest.raises(InvalidInputError):
        BigQueryWriter(client, project="proj").replace_partition(
            "ds.t", "2026-01-31", [{"id": 1}], key="id", **args
        )
    assert client.used == []


# --- ledger and execution-log rows ---------------------------------------------

AT = datetime(2026, 1, 31, 12, tzinfo=UTC)
ONCE = RetryPolicy(attempts=1)  # a row that passes the checks reaches the client once
LEDGER_ROW = LedgerRow("phase3", "2026-01-31", "a", "run-1", "success", AT, AT, False)
EXECUTION_ROW = ExecutionLogRow(AT, "phase3", "2026-01-31", AT, 1.0, "complete")


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from([f.name for f in dataclasses.fields(LedgerRow)]), hostile, max_size=3
    )
)
def test_ledger_rows_are_checked_before_the_client(changes: dict[str, Any]) -> None:
    """A hostile row: check_ledger_row raises InvalidInputError, and append sends nothing."""
    row = dataclasses.replace(LEDGER_ROW, **changes)
    client = Untouchable()
    ledger = BigQueryLedger("ds.completion_ledger", client, retry=ONCE)

    checked = _only_ours(lambda: check_ledger_row(row))
    appended = _only_ours(lambda: ledger.append(row))

    if checked is not None:
        assert isinstance(checked, InvalidInputError)
        assert isinstance(appended, InvalidInputError)
        assert client.used == []


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(
        st.sampled_from([f.name for f in dataclasses.fields(ExecutionLogRow)]),
        hostile,
        max_size=3,
    )
)
def test_execution_rows_are_checked_before_the_client(changes: dict[str, Any]) -> None:
    """A hostile execution-log row is refused with InvalidInputError before any insert."""
    row = dataclasses.replace(EXECUTION_ROW, **changes)
    client = Untouchable()
    log = BigQueryExecutionLog("ds.phase_execution_log", client, retry=ONCE)

    checked = _only_ours(lambda: check_execution_row(row))
    written = _only_ours(lambda: log.write(row))

    if checked is not None:
        assert isinstance(checked, InvalidInputError)
        assert isinstance(written, InvalidInputError)
        assert client.used == []


def test_item9_ledger_append_refuses_an_int64_overflow_without_sending() -> None:
    """record_count 2**63 never reaches BigQuery (it did, and then replay failed on it)."""
    client = Untouchable()

    with pytest.raises(InvalidInputError):
        BigQueryLedger("ds.completion_ledger", client).append(
            dataclasses.replace(LEDGER_ROW, record_count=2**63)
        )
    assert client.used == []


# --- publishing ------------------------------------------------------------------


class Event:
    def __init__(self, body: Any, attributes: Any) -> None:
        self.body = body
        self.attrs = attributes

    def to_dict(self) -> Any:
        return self.body

    def attributes(self) -> Any:
        return self.attrs


@pytest.mark.parametrize(
    "event",
    [None, 5, "event", Event(SELF, {}), Event(DEEP, {}), Event({"x": object()}, {}),
     Event({}, [1, 2]), Event({"x": math.nan}, None)],
    ids=["none", "int", "str", "self-ref", "deep", "object", "attr-list", "attr-none"],
)
def test_item9_publish_refuses_events_it_cannot_encode(event: Any) -> None:
    """publish(<hostile>) is an InvalidInputError before the client is created or used."""
    client = Untouchable()
    publisher = PubSubTriggerPublisher("projects/p/topics/topic-name", publisher=client)

    with pytest.raises(InvalidInputError):
        publisher.publish(event)
    assert client.used == []


# --- reconcile evidence ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(tables=hostile, day=hostile, opts=_options(("date_column", "timeout")))
def test_evidence_arguments(tables: Any, day: Any, opts: dict[str, Any]) -> None:
    """bigquery_output_counts with hostile arguments: our errors only, no query on rejection."""
    client = Untouchable()

    error = _only_ours(lambda: bigquery_output_counts(tables, day, client=client, **opts))

    if isinstance(error, InvalidInputError | ConfigurationError):
        assert client.used == []


@pytest.mark.parametrize("tables", [None, 5, "ds.t", ["ds.t"], {5: "ds.t"}])
def test_item9_evidence_tables_must_be_a_mapping(tables: Any) -> None:
    """A list, a string or non-string processor names: InvalidInputError, not AttributeError."""
    with pytest.raises(InvalidInputError):
        bigquery_output_counts(tables, "2026-01-31", client=Untouchable())
