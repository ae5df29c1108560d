"""
``BigQueryGate`` (issue 11, item 3): a phase's trigger waits until a table
holds enough rows (or distinct values) for the date; on the BigQuery emulator,
with the tracker on the Firestore emulator.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline_reliability.completion import CompletionTracker, PhaseSpec, TriggerEvent
from pipeline_reliability.errors import ConfigurationError, InvalidInputError
from pipeline_reliability.sinks import BigQueryGate

DAY = "2026-01-25"
PROCS = ("player_game_summary", "team_defense_game_summary")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"table": "no-dataset"},
        {"table": "ds.t", "min_rows": 0},
        {"table": "ds.t", "min_rows": True},
        {"table": "ds.t", "date_column": "d`; --"},
        {"table": "ds.t", "distinct": "a b"},
        {"table": "ds.t", "timeout": 0},
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    """Refused at construction, before any client exists."""
    with pytest.raises(ConfigurationError):
        BigQueryGate(**kwargs)


def test_bad_date_is_an_input_error_before_any_query() -> None:
    with pytest.raises(InvalidInputError):
        BigQueryGate("ds.t", client=object())("2026-02-30")


@pytest.fixture
def table(bigquery_client: Any, bigquery_dataset: str) -> str:
    """An empty phase-3 output table."""
    name = f"{bigquery_dataset}.player_game_summary"
    bigquery_client.query(f"CREATE TABLE `{name}` (game_date DATE, player STRING)").result()
    return name


def insert(client: Any, table: str, rows: list[tuple[str, str]]) -> None:
    values = ", ".join(f"(DATE '{d}', '{p}')" for d, p in rows)
    client.query(f"INSERT INTO `{table}` VALUES {values}").result()


@pytest.mark.bigquery
def test_counts_rows_and_distinct_values_of_the_date_only(
    bigquery_client: Any, table: str
) -> None:
    insert(bigquery_client, table, [(DAY, "lebron"), (DAY, "lebron"), (DAY, "ad"),
                                    ("2026-01-24", "x")])
    rows = BigQueryGate(table, min_rows=3, client=bigquery_client)
    players = BigQueryGate(table, min_rows=3, distinct="player", client=bigquery_client)

    assert rows.count(DAY) == 3
    assert rows(DAY).passed
    assert players.count(DAY) == 2
    result = players(DAY)
    assert not result.passed
    assert result.reason == f"2 distinct player < 3 in {table}"


@pytest.mark.bigquery
def test_missing_table_is_an_input_error_and_closes_the_gate(
    bigquery_client: Any, bigquery_dataset: str, memory_store: Any
) -> None:
    gate = BigQueryGate(f"{bigquery_dataset}.nope", client=bigquery_client)
    with pytest.raises(InvalidInputError, match="not found"):
        gate(DAY)
    tracker = CompletionTracker(memory_store, [PhaseSpec("p3", PROCS, gates=[gate])])
    results = [tracker.record_completion("p3", DAY, p, execution_id="r") for p in PROCS]
    assert results[-1].trigger is None
    assert results[-1].gate_reason is not None
    assert "InvalidInputError" in results[-1].gate_reason


@pytest.mark.firestore
@pytest.mark.bigquery
def test_item3_bigquery_gate_blocks_then_passes_after_rows_arrive_and_triggers_exactly_once(
    bigquery_client: Any, table: str, firestore_project: str
) -> None:
    """Firestore + BigQuery emulators: gated, rows arrive, one trigger."""
    from pipeline_reliability.stores.firestore import FirestoreStore

    store = FirestoreStore(project=firestore_project)
    gate = BigQueryGate(table, min_rows=2, client=bigquery_client)
    tracker = CompletionTracker(
        store, [PhaseSpec("p3", PROCS, gates=[gate], next_phase="p4")], owner="w1"
    )
    events: list[TriggerEvent] = []
    try:
        for p in PROCS:
            tracker.record_and_trigger("p3", DAY, p, execution_id=f"r-{p}", publish=events.append)
        status = tracker.status("p3", DAY)
        assert status.gated
        assert status.gate_reason == f"rows:{table}: 0 rows < 2 in {table}"
        assert tracker.sweep_and_trigger("p3", [DAY], events.append).outcomes[0].action == "gated"
        insert(bigquery_client, table, [(DAY, "lebron")])
        assert tracker.sweep_and_trigger("p3", [DAY], events.append).outcomes[0].action == "gated"
        assert events == []

        insert(bigquery_client, table, [(DAY, "ad")])
        swept = tracker.sweep_and_trigger("p3", [DAY], events.append)
        again = tracker.sweep_and_trigger("p3", [DAY], events.append)
        redelivered = tracker.record_and_trigger(
            "p3", DAY, PROCS[0], execution_id="r-again", publish=events.append
        )

        assert swept.outcomes[0].action == "claimed"
        assert again.outcomes[0].action == "triggered"
        assert redelivered.trigger is None
        assert [(e.trigger_id, e.attempt) for e in events] == [(f"p3:{DAY}", 1)]
        assert tracker.status("p3", DAY).triggered
    finally:
        store.close()
