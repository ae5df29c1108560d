"""BigQueryLedger: row encoding, and the append/read round trip on the emulator."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline_reliability.completion import CompletionLedger, LedgerRow
from pipeline_reliability.errors import (
    ConfigurationError,
    InvalidInputError,
    SinkUnavailableError,
    WriteFailedError,
)
from pipeline_reliability.retry import RetryPolicy, set_testing
from pipeline_reliability.sinks.ledger import BigQueryLedger, ledger_row_id, ledger_row_to_json
from pipeline_reliability.testing import FakeClock

T0 = datetime(2026, 1, 25, 12, 0, tzinfo=UTC)


def row(processor: str = "player_game_summary", **changes: Any) -> LedgerRow:
    """A degraded phase-3 completion as the tracker writes it."""
    base = LedgerRow(
        phase="phase3",
        date="2026-01-25",
        processor=processor,
        execution_id=f"run-{processor}",
        status="success",
        event_time=T0,
        recorded_time=T0 + timedelta(seconds=1),
        primary_ok=False,
        message_id=f"msg-{processor}",
        record_count=241,
        metadata={"is_incremental": True, "entities_changed": ["lebron-james"]},
    )
    return dataclasses.replace(base, **changes)


def test_row_encoding_sends_metadata_as_json_text() -> None:
    """metadata is sent as JSON text (what a JSON column takes over the streaming API)."""
    encoded = ledger_row_to_json(row())

    assert json.loads(encoded["metadata"]) == row().metadata
    assert encoded["date"] == "2026-01-25"
    assert encoded["event_time"] == "2026-01-25T12:00:00+00:00"


def test_row_id_is_the_completion_not_its_times() -> None:
    """A retried or redelivered append of the same completion gets the same insertId."""
    again = row(event_time=T0 + timedelta(minutes=1), recorded_time=T0 + timedelta(minutes=5))

    assert ledger_row_id(again) == ledger_row_id(row())
    assert ledger_row_id(row(status="partial")) != ledger_row_id(row())


def test_ledger_implements_the_protocol_without_importing_google() -> None:
    """A BigQueryLedger is a CompletionLedger and creates no client until used (F10)."""
    before = {m for m in sys.modules if m.startswith("google.cloud.bigquery")}

    ledger = BigQueryLedger("proj.ds.completion_ledger")

    assert isinstance(ledger, CompletionLedger)
    assert {m for m in sys.modules if m.startswith("google.cloud.bigquery")} == before


@pytest.mark.parametrize(
    ("table", "options"), [("no_dataset", {}), ("ds.t", {"timeout": 0})]
)
def test_bad_configuration_is_rejected(table: str, options: dict[str, Any]) -> None:
    """A table id without a dataset, or a non-positive timeout, is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        BigQueryLedger(table, **options)


class FlakyClient:
    """Only a fake can drop a connection on cue: fails ``failures`` inserts, then accepts."""

    project = "proj"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.inserts: list[tuple[str, list[Any], list[str]]] = []

    def insert_rows_json(self, table: str, rows: list[Any], **kwargs: Any) -> list[Any]:
        self.inserts.append((table, rows, kwargs["row_ids"]))
        if len(self.inserts) <= self.failures:
            raise ConnectionError("connection reset by peer")
        return []


def test_transient_insert_failures_are_retried(fake_clock: FakeClock) -> None:
    """A dropped connection is retried with the same insertId until the row is accepted."""
    client = FlakyClient(failures=2)
    ledger = BigQueryLedger(
        "ds.completion_ledger", client, retry=RetryPolicy(attempts=3, clock=fake_clock)
    )

    ledger.append(row())

    assert len(client.inserts) == 3
    assert {ids[0] for _, _, ids in client.inserts} == {ledger_row_id(row())}
    assert client.inserts[0][0] == "proj.ds.completion_ledger"


def test_exhausted_retries_raise_a_transient_write_error(fake_clock: FakeClock) -> None:
    """When every attempt fails transiently, the transient SinkUnavailableError is raised."""
    retry = RetryPolicy(attempts=2, clock=fake_clock)
    ledger = BigQueryLedger("ds.completion_ledger", FlakyClient(failures=9), retry=retry)

    with pytest.raises(SinkUnavailableError) as info:
        ledger.append(row())

    assert isinstance(info.value, WriteFailedError)
    assert info.value.transient


# --- on the BigQuery emulator -------------------------------------------------


@pytest.fixture
def ledger(bigquery_client: Any, bigquery_dataset: str) -> Iterator[BigQueryLedger]:
    """A ledger table in a fresh dataset, retries without sleeps."""
    ledger = BigQueryLedger(
        f"{bigquery_dataset}.completion_ledger",
        bigquery_client,
        retry=RetryPolicy(attempts=2, deadline=10.0),
        timeout=10.0,
    )
    assert ledger.create_table() is True
    with set_testing(True):
        yield ledger


@pytest.mark.bigquery
def test_append_then_read_round_trips(ledger: BigQueryLedger) -> None:
    """Rows read back equal the rows appended, oldest first."""
    rows = [
        row("team_defense_game_summary", recorded_time=T0 + timedelta(seconds=2)),
        row("player_game_summary"),
        row("ml_feature_store", metadata=None, message_id=None, record_count=None),
    ]
    for r in rows:
        ledger.append(r)

    read = ledger.read("phase3", ["2026-01-25"])

    assert read == sorted(rows, key=lambda r: r.recorded_time)


@pytest.mark.bigquery
def test_read_filters_by_phase_and_dates(ledger: BigQueryLedger) -> None:
    """read returns only the rows of the phase and the dates asked for."""
    wanted = row(date="2026-01-26")
    ledger.append(wanted)
    ledger.append(row(date="2026-01-27"))
    ledger.append(row(phase="phase4", date="2026-01-26"))

    assert ledger.read("phase3", ["2026-01-26", "2026-01-28"]) == [wanted]
    assert ledger.read("phase3", []) == []


@pytest.mark.bigquery
def test_repeated_append_reads_once(ledger: BigQueryLedger) -> None:
    """Appending the same completion twice reads back once (the emulator ignores insertId)."""
    ledger.append(row())
    later = T0 + timedelta(seconds=30)
    ledger.append(row(event_time=later, recorded_time=later))

    assert ledger.read("phase3", ["2026-01-25"]) == [row()]


@pytest.mark.bigquery
def test_create_table_is_idempotent(ledger: BigQueryLedger) -> None:
    """Creating the ledger table again reports that it existed."""
    assert ledger.create_table() is False


@pytest.mark.bigquery
def test_append_to_missing_table_raises_write_failed(
    bigquery_client: Any, bigquery_dataset: str
) -> None:
    """An append BigQuery refuses raises WriteFailedError with the NotFound chained."""
    from google.api_core.exceptions import NotFound

    missing = BigQueryLedger(f"{bigquery_dataset}.nope", bigquery_client, timeout=10.0)

    with pytest.raises(WriteFailedError) as info:
        missing.append(row())

    assert isinstance(info.value.__cause__, NotFound)


@pytest.mark.bigquery
def test_read_rejects_bad_dates(ledger: BigQueryLedger) -> None:
    """A malformed date raises InvalidInputError before any query."""
    with pytest.raises(InvalidInputError):
        ledger.read("phase3", ["25/01/2026"])


@pytest.mark.bigquery
def test_rows_older_versions_wrote_are_quarantined_on_replay(
    ledger: BigQueryLedger, bigquery_client: Any
) -> None:
    """A row no store can take, streamed in past the checks, is read back and quarantined."""
    from pipeline_reliability import MemoryStore
    from pipeline_reliability.completion import CompletionTracker, PhaseSpec

    bad = ledger_row_to_json(row("team_defense_game_summary"))
    bad["processor"] = "team defense/summary"  # unsafe as a document key
    errors = bigquery_client.insert_rows_json(ledger._sink.qualified, [bad], retry=None)
    assert errors == []
    ledger.append(row())
    spec = PhaseSpec("phase3", {"player_game_summary", "team_defense_game_summary"})
    tracker = CompletionTracker(MemoryStore(), [spec], ledger=ledger)

    report = tracker.replay_ledger("phase3", ["2026-01-25"])

    assert (report.rows, report.applied) == (2, 1)
    [quarantined] = report.quarantined
    assert quarantined.processor == "team defense/summary"
    assert "processor" in quarantined.reason
    assert tracker.status("phase3", "2026-01-25").completed == {"player_game_summary"}


def test_append_refuses_a_row_no_store_can_hold() -> None:
    """record_count 2**63 is refused before the client is created."""
    ledger = BigQueryLedger("ds.completion_ledger")

    with pytest.raises(InvalidInputError):
        ledger.append(row(record_count=2**63))
