"""bigquery_output_counts / bigquery_output_evidence: reconcile's view of the output tables."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from pipeline_reliability import MemoryStore
from pipeline_reliability.completion import CompletionTracker, PhaseSpec
from pipeline_reliability.errors import ConfigurationError, InvalidInputError
from pipeline_reliability.sinks.evidence import bigquery_output_counts, bigquery_output_evidence


def test_unsafe_date_column_is_rejected() -> None:
    """A date column that is not a plain identifier is refused before any query."""
    with pytest.raises(ConfigurationError):
        bigquery_output_counts({"p": "ds.t"}, "2026-01-25", date_column="d`; --")


def test_bad_date_is_rejected() -> None:
    """A malformed date raises InvalidInputError before any query."""
    with pytest.raises(InvalidInputError):
        bigquery_output_counts({"p": "ds.t"}, "2026-13-01")


def test_no_tables_needs_no_client() -> None:
    """An empty mapping gives an empty answer without touching BigQuery."""
    assert bigquery_output_evidence({}, "2026-01-25") == {}


@pytest.fixture
def outputs(bigquery_client: Any, bigquery_dataset: str) -> dict[str, str]:
    """Two processors' output tables: one has rows for 2026-01-25, the other only another day."""
    ds = bigquery_dataset
    for table in ("player_game_summary", "team_defense_game_summary"):
        bigquery_client.query(
            f"CREATE TABLE `{ds}.{table}` (game_date DATE, player STRING)"
        ).result()
    bigquery_client.query(
        f"INSERT INTO `{ds}.player_game_summary` VALUES "
        "(DATE '2026-01-25', 'lebron-james'), (DATE '2026-01-25', 'anthony-davis'), "
        "(DATE '2026-01-24', 'lebron-james')"
    ).result()
    bigquery_client.query(
        f"INSERT INTO `{ds}.team_defense_game_summary` VALUES (DATE '2026-01-24', 'LAL')"
    ).result()
    return {
        "player_game_summary": f"{ds}.player_game_summary",
        "team_defense_game_summary": f"{ds}.team_defense_game_summary",
    }


@pytest.mark.bigquery
def test_counts_and_evidence_per_processor(bigquery_client: Any, outputs: dict[str, str]) -> None:
    """Rows for the date are counted per table; a count above zero is evidence of output."""
    counts = bigquery_output_counts(outputs, date(2026, 1, 25), client=bigquery_client)
    evidence = bigquery_output_evidence(outputs, "2026-01-25", client=bigquery_client)

    assert counts == {"player_game_summary": 2, "team_defense_game_summary": 0}
    assert evidence == {"player_game_summary": True, "team_defense_game_summary": False}


@pytest.mark.bigquery
def test_missing_table_is_an_input_error(bigquery_client: Any, bigquery_dataset: str) -> None:
    """A table that does not exist raises InvalidInputError naming it, NotFound chained."""
    from google.api_core.exceptions import NotFound

    with pytest.raises(InvalidInputError, match="nope not found") as info:
        bigquery_output_evidence(
            {"p": f"{bigquery_dataset}.nope"}, "2026-01-25", client=bigquery_client
        )

    assert isinstance(info.value.__cause__, NotFound)


@pytest.mark.bigquery
def test_evidence_reconciles_a_lost_completion(
    bigquery_client: Any, outputs: dict[str, str], memory_store: MemoryStore
) -> None:
    """The evidence mapping plugs into reconcile: output that exists is recorded as reconciled."""
    tracker = CompletionTracker(memory_store, [PhaseSpec("phase3", frozenset(outputs))])

    report = tracker.reconcile(
        "phase3",
        "2026-01-25",
        bigquery_output_evidence(outputs, "2026-01-25", client=bigquery_client),
    )

    assert report.reconciled == frozenset({"player_game_summary"})
    assert report.still_missing == frozenset({"team_defense_game_summary"})
